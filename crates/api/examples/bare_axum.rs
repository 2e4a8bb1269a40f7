//! The floor for scripts/bench/api.sh: an axum server with nothing on it but
//! `GET /` returning a small body, on the same tokio runtime set-up as the
//! api (multi-threaded, all drivers). Whatever a route of ours costs above
//! this is ours to explain.
//!
//! Usage: bare_axum ADDR (e.g. 127.0.0.1:8080)

use axum::Router;
use axum::routing::get;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let app = Router::new().route("/", get(|| async { r#"{"status":"ok"}"# }));
        axum::serve(listener, app).with_graceful_shutdown(shared_core::shutdown::signal()).await
    })
}
