//! The one way handlers send email: a `send_email` job, which the worker
//! delivers with retries. Enqueued inside the caller's transaction where
//! there is one, so the email exists exactly when the change behind it does.

use shared_core::db::Tx;
use shared_core::email::Email;
use shared_core::jobs;
use shared_core::jobs::kinds::SendEmail;

use crate::state::AppState;

/// Queues `email` in `tx` when email is configured; otherwise logs that it
/// was not sent.
pub async fn send_in(tx: &mut Tx, state: &AppState, email: Email) -> Result<(), sqlx::Error> {
    if !state.settings.email_enabled() {
        tracing::info!(subject = %email.subject, "email is not configured; not sending");
        return Ok(());
    }
    let job = jobs::internal_job::<SendEmail>(email.into(), &state.settings.worker);
    jobs::enqueue_in(tx, &job).await.map(drop)
}

/// [`send_in`] in a transaction of its own.
pub async fn send(state: &AppState, email: Email) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin_write().await?;
    send_in(&mut tx, state, email).await?;
    tx.commit().await
}
