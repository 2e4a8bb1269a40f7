//! `password_recovery`: mails a reset link if the address belongs to a
//! user. The api queues one for every recovery request, known address or
//! not, so that its answer takes the same work either way; the lookup
//! happens here.

use serde::{Deserialize, Serialize};

use crate::db::jobs::Job;
use crate::db::users;
use crate::email::templates;
use crate::jobs::kind::{Context, JobError, Kind, Output, Submitters};

pub struct PasswordRecovery;

/// The address a recovery was asked for, and the reset token for it (made
/// by the api, whose SECRET_KEY verifies it later).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordRecoveryPayload {
    pub email: String,
    pub token: String,
}

impl Kind for PasswordRecovery {
    const NAME: &'static str = "password_recovery";
    const SUBMITTERS: Submitters = Submitters::Nobody;
    const PRIORITY: i32 = 10;
    type Payload = PasswordRecoveryPayload;

    async fn perform(ctx: &Context<'_>, job: &Job, payload: PasswordRecoveryPayload) -> Result<Output, JobError> {
        // An address nobody has gets nothing, and the api answered the same either way.
        let Some(user) = users::find_by_email(ctx.db, &payload.email).await? else { return Ok(None) };
        let mailer = ctx.mailer()?;
        let message = templates::reset_password(ctx.settings, &user.email, &payload.token);
        mailer.send(&message, Some(job.id)).await?;
        Ok(None)
    }
}
