//! `send_email`: delivers one email; every email of Part A goes out this way.

use serde::{Deserialize, Serialize};

use crate::db::jobs::Job;
use crate::email::Email;
use crate::jobs::kind::{Context, JobError, Kind, Output, Submitters};

pub struct SendEmail;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEmailPayload {
    pub to: String,
    pub subject: String,
    pub html: String,
}

impl From<Email> for SendEmailPayload {
    fn from(Email { to, subject, html }: Email) -> Self {
        Self { to, subject, html }
    }
}

impl Kind for SendEmail {
    const NAME: &'static str = "send_email";
    const SUBMITTERS: Submitters = Submitters::Nobody;
    const PRIORITY: i32 = 10;
    type Payload = SendEmailPayload;

    async fn perform(ctx: &Context<'_>, job: &Job, payload: SendEmailPayload) -> Result<Output, JobError> {
        let SendEmailPayload { to, subject, html } = payload;
        // The job's id gives the email its Message-ID, so a rerun after a
        // crash sends a copy recognisable as one.
        ctx.mailer()?.send(&Email { to, subject, html }, Some(job.id)).await?;
        Ok(None)
    }
}
