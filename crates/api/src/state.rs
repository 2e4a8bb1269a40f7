use std::sync::Arc;

use shared_core::{Db, Settings};

/// What every handler can reach. Cheap to clone: pools and settings are shared.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
}
