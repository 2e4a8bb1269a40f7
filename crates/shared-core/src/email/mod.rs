//! Outgoing email: the messages of the API contract (password recovery, new
//! account, test email) rendered from HTML templates, and an SMTP mailer
//! configured from the FastAPI-compatible `SMTP_*` / `EMAILS_FROM_*` variables.
//!
//! Email is off unless `SMTP_HOST` and `EMAILS_FROM_EMAIL` are both set
//! ([`Mailer::from_settings`] returns `None` then).

pub mod templates;

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::SmtpSettings;

/// How long one SMTP conversation step (connect, each command) may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One email, ready to send: a single `text/html` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// Why an email could not be built or delivered. Messages never carry the
/// SMTP password.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The message or the transport could not be put together (a bad
    /// address in `EMAILS_FROM_EMAIL` or in the recipient, a bad `SMTP_HOST`).
    /// Retrying does not help.
    #[error("cannot build the email: {0}")]
    Build(String),
    /// The SMTP server could not be reached, or it answered with a
    /// transient (4xx) failure: retrying may help.
    #[error("SMTP delivery failed: {0}")]
    Transport(String),
    /// The SMTP server refused the message for good (a 5xx answer: no such
    /// mailbox, policy): retrying does not help.
    #[error("SMTP server rejected the email: {0}")]
    Rejected(String),
}

impl EmailError {
    /// Whether sending the same email again would fail the same way.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Build(_) | Self::Rejected(_))
    }
}

/// Sends [`Email`]s over SMTP. Cheap to clone; every `send` opens its own
/// connection (no pool), so a server restart between sends is harmless.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// For `Debug` only.
    server: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the transport's own Debug: it would print the credentials.
        f.debug_struct("Mailer").field("server", &self.server).field("from", &self.from.to_string()).finish()
    }
}

impl Mailer {
    /// `None` when email is disabled (`SMTP_HOST` or `EMAILS_FROM_EMAIL`
    /// unset); `Some(Err(_))` when the settings cannot make a mailer (e.g.
    /// `EMAILS_FROM_EMAIL` is not an email address).
    pub fn from_settings(settings: &crate::Settings) -> Option<Result<Self, EmailError>> {
        settings.email_enabled().then(|| Self::from_smtp(&settings.smtp))
    }

    fn from_smtp(smtp: &SmtpSettings) -> Result<Self, EmailError> {
        let address: Address = smtp.from_email.trim().parse().map_err(|err| {
            EmailError::Build(format!("EMAILS_FROM_EMAIL `{}` is not a valid email address: {err}", smtp.from_email))
        })?;
        let name = Some(smtp.from_name.trim().to_owned()).filter(|n| !n.is_empty());
        let from = Mailbox::new(name, address);

        let host = smtp.host.trim();
        let builder = if smtp.ssl {
            // SMTP_SSL: implicit TLS from the first byte (usually port 465).
            AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|err| EmailError::Build(format!("SMTP_HOST `{host}` cannot be used for TLS: {err}")))?
        } else if smtp.starttls {
            // SMTP_TLS: plain connection upgraded with STARTTLS, which is
            // required: no credentials or mail cross an unencrypted link.
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|err| EmailError::Build(format!("SMTP_HOST `{host}` cannot be used for TLS: {err}")))?
        } else {
            // Neither: plain SMTP, e.g. a relay on the same private network
            // or a local catcher like Mailpit.
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        let mut builder = builder.port(smtp.port).timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = smtp.user.as_deref().filter(|u| !u.is_empty()) {
            let password = smtp.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.to_owned(), password));
        }
        let mode = if smtp.ssl {
            "implicit TLS"
        } else if smtp.starttls {
            "STARTTLS"
        } else {
            "plain"
        };
        Ok(Self { transport: builder.build(), from, server: format!("{host}:{} ({mode})", smtp.port) })
    }

    /// Sends one email: one SMTP connection, closed afterwards. With a
    /// `delivery_id` (the job that sends it) the Message-ID is derived from
    /// it, so a second delivery of the same email is recognisable as such
    /// downstream; otherwise it is random.
    pub async fn send(&self, email: &Email, delivery_id: Option<uuid::Uuid>) -> Result<(), EmailError> {
        let to: Mailbox = email.to.trim().parse().map_err(|err| {
            EmailError::Build(format!("recipient `{}` is not a valid email address: {err}", email.to))
        })?;
        let message_id = delivery_id.map(|id| format!("<{}@{}>", id.simple(), self.from.email.domain()));
        let message = Message::builder()
            .message_id(message_id)
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.as_str())
            .header(ContentType::TEXT_HTML)
            .body(email.html.clone())
            .map_err(|err| EmailError::Build(err.to_string()))?;
        self.transport.send(message).await.map_err(|err| {
            if err.is_permanent() {
                EmailError::Rejected(err.to_string())
            } else {
                EmailError::Transport(err.to_string())
            }
        })?;
        tracing::debug!(server = %self.server, subject = %email.subject, "email sent");
        Ok(())
    }
}
