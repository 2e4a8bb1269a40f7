//! Graceful shutdown of the real `api` binary: on SIGTERM it stops accepting,
//! lets a slow in-flight request finish within SHUTDOWN_GRACE_SECONDS and
//! exits 0; a request still incomplete when the grace period ends is cut off
//! and the process still exits 0 on its own.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use common::api_process::ApiProcess;
use shared_core::db::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

common::on_both_backends!(in_flight_request_completes_during_the_drain, incomplete_request_is_cut_off_when_grace_ends);

fn grace(env: &mut std::collections::HashMap<String, String>, seconds: u64) {
    env.insert("SHUTDOWN_GRACE_SECONDS".into(), seconds.to_string());
}

/// A signup body and the raw request head announcing its full length.
fn signup_request(port: u16, email: &str) -> (String, String) {
    let body = serde_json::json!({ "email": email, "password": "password123", "full_name": "Slow Client" }).to_string();
    let head = format!(
        "POST /api/v1/users/signup HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nAccept: application/json\r\n\r\n",
        body.len()
    );
    (head, body)
}

/// Opens a connection and sends the request head and the first half of the
/// body; returns once the server has the request in flight, waiting for the rest.
async fn start_slow_signup(api: &ApiProcess, email: &str) -> (TcpStream, String) {
    let (head, body) = signup_request(api.port, email);
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    api.wait_for_in_flight(1).await;
    (stream, rest.to_owned())
}

/// Reads one HTTP/1.1 response (Content-Length framed, or up to EOF).
/// Returns (status, headers in lower case, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before a response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = head.to_ascii_lowercase();
    let length = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|value| value.trim().parse::<usize>().unwrap());
    let mut body = buf[header_end..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the connection closed mid-body");
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut body).await.unwrap();
        }
    }
    (status, headers, String::from_utf8(body).unwrap())
}

/// After SIGTERM a new connection is either refused, or accepted by the
/// kernel but never answered.
async fn assert_new_connections_are_not_served(port: u16) {
    let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(("127.0.0.1", port))).await;
    let Ok(Ok(mut stream)) = connect else {
        return; // refused (or not even completed): not accepting
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut reply = Vec::new();
    // Closed, reset or silent for a second are all fine; an answer is not.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut reply)).await;
    assert!(reply.is_empty(), "a connection opened after SIGTERM was served: {:?}", String::from_utf8_lossy(&reply));
}

async fn in_flight_request_completes_during_the_drain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut api = ApiProcess::start(&db, |env| grace(env, 10)).await;
    let email = format!("slow-{}@example.com", uuid::Uuid::new_v4().simple());

    let (mut stream, rest) = start_slow_signup(&api, &email).await;
    api.sigterm();
    let signalled = Instant::now();
    api.wait_for_drain().await;
    assert!(api.child.try_wait().unwrap().is_none(), "the api exited with a request in flight:\n{}", api.log());

    assert_new_connections_are_not_served(api.port).await;

    stream.write_all(rest.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let (status, headers, body) = tokio::time::timeout(Duration::from_secs(8), read_response(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("no response to the in-flight request:\n{}", api.log()));
    assert_eq!(status, 200, "{headers}{body}\n{}", api.log());
    let user: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(user["email"], email.as_str(), "{user}");
    assert_eq!(user["full_name"], "Slow Client", "{user}");
    assert_eq!(user["is_active"], true, "{user}");
    assert_eq!(user["is_superuser"], false, "{user}");
    assert!(user["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()), "{user}");
    assert!(user.get("hashed_password").is_none() && user.get("password").is_none(), "{user}");

    // The connection is not kept alive past the drain.
    let mut after = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut after)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the connection stayed open after the drain");

    let (status, _) = api.wait_for_exit(Duration::from_secs(10).saturating_sub(signalled.elapsed())).await;
    assert!(status.success(), "exit status {status}:\n{}", api.log());
    let exited_after = signalled.elapsed();
    assert!(exited_after < Duration::from_secs(10), "exit took {exited_after:?}, longer than the grace period");
}

async fn incomplete_request_is_cut_off_when_grace_ends(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut api = ApiProcess::start(&db, |env| grace(env, 2)).await;
    let email = format!("stalled-{}@example.com", uuid::Uuid::new_v4().simple());

    let (mut stream, _rest) = start_slow_signup(&api, &email).await;
    api.sigterm();
    let (status, took) = api.wait_for_exit(Duration::from_millis(3500)).await;
    assert!(status.success(), "exit status {status}:\n{}", api.log());
    // It waited for the stalled request rather than dropping it at once.
    assert!(took >= Duration::from_millis(1500), "exited after {took:?}, before the 2 s grace period ended");

    // The stalled client gets no response, just the connection closed.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the stalled connection was left open after exit");
    assert!(!String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"), "a cut-off request was answered 200");
}
