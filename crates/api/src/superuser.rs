//! Start-up data: the first superuser from `FIRST_SUPERUSER` and
//! `FIRST_SUPERUSER_PASSWORD`, created when missing, left alone otherwise.

use shared_core::Settings;
use shared_core::auth::password::PasswordHasher;
use shared_core::db::Db;
use shared_core::db::users::{self, NewUser};

#[derive(Debug, thiserror::Error)]
pub enum SuperuserError {
    #[error("cannot hash FIRST_SUPERUSER_PASSWORD: {0}")]
    Hash(#[from] shared_core::auth::password::PasswordError),
    #[error("cannot create FIRST_SUPERUSER: {0}")]
    Database(#[from] sqlx::Error),
}

/// Safe with several replicas starting at once: the insert does nothing
/// when another replica's insert landed first.
pub async fn ensure(db: &Db, settings: &Settings, hasher: &PasswordHasher) -> Result<(), SuperuserError> {
    if users::find_by_email(db, &settings.first_superuser).await?.is_some() {
        return Ok(());
    }
    let hashed_password = hasher.hash(settings.first_superuser_password.expose()).await?;
    let new = NewUser {
        email: &settings.first_superuser,
        hashed_password: &hashed_password,
        full_name: None,
        is_active: true,
        is_superuser: true,
    };
    match users::create_if_absent(db, new).await? {
        Some(user) => tracing::info!(email = %user.email, "first superuser created"),
        None => tracing::info!("first superuser was created by another replica"),
    }
    Ok(())
}
