//! The one way handlers send email. Delivery happens after the response so
//! its duration does not reveal anything (e.g. whether an address is
//! registered) and a slow SMTP server does not slow the API.

use shared_core::email::Email;

use crate::state::AppState;

/// Sends `email` in the background when email is configured; otherwise logs
/// that it was not sent.
pub fn send(state: &AppState, email: Email) {
    let Some(mailer) = state.mailer.clone() else {
        tracing::info!(subject = %email.subject, "email is not configured; not sending");
        return;
    };
    tokio::spawn(async move {
        if let Err(err) = mailer.send(&email).await {
            tracing::error!(error = %err, subject = %email.subject, "email delivery failed");
        }
    });
}
