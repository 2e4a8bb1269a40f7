use std::ops::Deref;
use std::sync::Arc;

use shared_core::auth::password::PasswordHasher;
use shared_core::auth::token::TokenKeys;
use shared_core::{Db, Settings};

use crate::rate_limit::RateLimiter;

/// What every handler can reach, behind one reference count. axum clones
/// the state twice per request (with the route's service, then as the
/// handler's argument): with each part counted on its own, that was eight
/// shared counters up and down each time, bounced between the cores.
#[derive(Clone)]
pub struct AppState(Arc<Resources>);

pub struct Resources {
    pub settings: Settings,
    pub db: Db,
    pub hasher: PasswordHasher,
    pub tokens: TokenKeys,
    pub rate_limiter: RateLimiter,
}

impl AppState {
    pub fn new(resources: Resources) -> Self {
        Self(Arc::new(resources))
    }
}

impl Deref for AppState {
    type Target = Resources;

    fn deref(&self) -> &Resources {
        &self.0
    }
}
