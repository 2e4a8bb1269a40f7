//! [`SentryCatcher`]: an HTTP endpoint that takes Sentry envelopes as
//! Sentry's ingestion does (`POST /api/<project>/envelope/`) and keeps the
//! events in them, so a test can read back what a binary reported.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct SentryCatcher {
    address: SocketAddr,
    events: Arc<Mutex<Vec<Value>>>,
    server: JoinHandle<()>,
}

impl Drop for SentryCatcher {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SentryCatcher {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("SentryCatcher: cannot bind 127.0.0.1:0");
        let address = listener.local_addr().expect("SentryCatcher: no local address");
        let events = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().route("/api/{project}/envelope/", post(receive)).with_state(Arc::clone(&events));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, events, server }
    }

    /// A DSN pointing here (plain HTTP, project 1).
    pub fn dsn(&self) -> String {
        format!("http://public@{}/1", self.address)
    }

    /// The events received so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The first event for which `matches` holds, waiting up to `timeout`.
    pub async fn wait_for(&self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.events().into_iter().find(|e| matches(e)) {
                return Some(event);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(events): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> &'static str {
    let found = events_in(&body);
    events.lock().unwrap_or_else(PoisonError::into_inner).extend(found);
    "{}"
}

/// The `event` items of an envelope: a header line, then per item a header
/// line and a payload of the header's `length` bytes (or up to the next
/// newline when it has none).
fn events_in(envelope: &[u8]) -> Vec<Value> {
    let mut events = Vec::new();
    let mut rest = match envelope.iter().position(|b| *b == b'\n') {
        Some(end) => &envelope[end + 1..],
        None => return events,
    };
    while !rest.is_empty() {
        let header_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let Ok(header) = serde_json::from_slice::<Value>(&rest[..header_end]) else { break };
        rest = rest.get(header_end + 1..).unwrap_or_default();
        let length = header["length"]
            .as_u64()
            .map_or_else(|| rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len()), |n| n as usize);
        let payload = rest.get(..length).unwrap_or(rest);
        if header["type"] == "event"
            && let Ok(event) = serde_json::from_slice(payload)
        {
            events.push(event);
        }
        rest = rest.get(length..).unwrap_or_default();
        rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    }
    events
}
