//! The HTTP service: routes, middleware, start-up. `main.rs` is only the
//! command line around it; tests drive [`startup::Application`] directly.

pub mod error;
pub mod extract;
pub mod healthcheck;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod models;
pub mod notify;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod startup;
pub mod state;
pub mod superuser;
