use std::sync::Arc;

use shared_core::auth::password::PasswordHasher;
use shared_core::auth::token::TokenKeys;
use shared_core::{Db, Settings};

use crate::rate_limit::RateLimiter;

/// What every handler can reach. Cheap to clone: pools and settings are shared.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub hasher: PasswordHasher,
    pub tokens: TokenKeys,
    pub rate_limiter: RateLimiter,
}
