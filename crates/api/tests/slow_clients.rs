//! Slow and silent clients cannot take the api away from everyone else: the
//! real binary, with its open-file limit lowered below the number of
//! connections the test opens, keeps answering a normal client within a
//! second, and closes the silent and the trickling ones once the head
//! timeout has passed. A kept-alive connection gets the longer keep-alive
//! timeout instead.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestDb;
use common::api_process::ApiProcess;
use shared_core::db::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DESCRIPTORS: u64 = 256;
const SILENT: usize = 200;
const TRICKLING: usize = 200;
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(6);

fn timeouts(env: &mut HashMap<String, String>) {
    with_timeouts(HEAD_TIMEOUT.as_secs(), KEEP_ALIVE_TIMEOUT.as_secs())(env);
}

/// Sets the head and keep-alive timeouts, in seconds.
fn with_timeouts(head: u64, keep_alive: u64) -> impl FnOnce(&mut HashMap<String, String>) {
    move |env| {
        env.insert("HTTP_HEADER_READ_TIMEOUT_SECONDS".into(), head.to_string());
        env.insert("HTTP_KEEP_ALIVE_TIMEOUT_SECONDS".into(), keep_alive.to_string());
    }
}

/// One request on a kept-alive connection: what the server answered, as
/// far as one read takes it.
async fn kept_alive_get(stream: &mut TcpStream, port: u16, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = vec![0u8; 4096];
    let n = stream.read(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

/// One request on a connection of its own: the status and how long it took.
async fn get_healthz(port: u16) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.ok()?;
        String::from_utf8_lossy(&reply).split(' ').nth(1)?.parse().ok()
    })
    .await
    .ok()
    .flatten();
    (answered, started.elapsed())
}

/// Whether the server has closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(within, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_beyond_the_descriptor_limit_do_not_lock_others_out() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = ApiProcess::start_with_descriptors(&db, Some(DESCRIPTORS), timeouts).await;
    let port = api.port;

    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Trickling clients send a request head one byte at a time, forever.
    let mut trickling = Vec::new();
    for _ in 0..TRICKLING {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        trickling.push(tokio::spawn(async move {
            let mut stream = stream;
            let head = b"GET /healthz HTTP/1.1\r\nX-Slow: ";
            for byte in head.iter().cycle() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return true; // the server closed it
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        }));
    }
    let opened = Instant::now();

    for attempt in 0..5 {
        let (status, took) = get_healthz(port).await;
        assert_eq!(status, Some(200), "attempt {attempt}: no answer within 10 s\n{}", api.log());
        assert!(took < Duration::from_secs(1), "attempt {attempt}: answered after {took:?}");
    }

    // Every silent and trickling connection is closed by the head timeout
    // (some sooner, shed to make room).
    let limit = HEAD_TIMEOUT + Duration::from_secs(3);
    for (i, stream) in silent.iter_mut().enumerate() {
        let left = limit.saturating_sub(opened.elapsed());
        assert!(closed_within(stream, left).await, "silent connection {i} still open after {:?}", opened.elapsed());
    }
    for (i, task) in trickling.into_iter().enumerate() {
        let left = limit.saturating_sub(opened.elapsed()) + Duration::from_secs(1);
        let closed = tokio::time::timeout(left, task).await.is_ok_and(|ended| ended.unwrap());
        assert!(closed, "trickling connection {i} still open after {:?}", opened.elapsed());
    }
    let log = api.log();
    assert!(log.contains("cannot accept connections"), "the descriptor limit was never reached:\n{log}");
    assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_waits_for_the_keep_alive_timeout_not_the_head_timeout() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = ApiProcess::start(&db, timeouts).await;
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).await.unwrap();
    let reply = kept_alive_get(&mut stream, api.port, "/healthz").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let idle_since = Instant::now();

    // Past the head timeout it is still open: it is idle, not slow.
    assert!(!closed_within(&mut stream, HEAD_TIMEOUT + Duration::from_secs(1)).await, "closed at the head timeout");
    // Then the keep-alive timeout closes it.
    let left = (KEEP_ALIVE_TIMEOUT + Duration::from_secs(2)).saturating_sub(idle_since.elapsed());
    assert!(closed_within(&mut stream, left).await, "still open after {:?}", idle_since.elapsed());
}

/// A head that starts after a keep-alive pause is held to the head timeout
/// from its first byte, not to what is left of the keep-alive one. (With a
/// head timeout of 1 s the server looks at the connection during the pause
/// and finds it idle between requests, as it would in a real pause.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_begun_after_a_keep_alive_pause_gets_the_head_timeout() {
    const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
    let db = TestDb::new(Backend::Sqlite).await;
    let api = ApiProcess::start(&db, with_timeouts(HEAD_TIMEOUT.as_secs(), KEEP_ALIVE_TIMEOUT.as_secs())).await;
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).await.unwrap();
    let reply = kept_alive_get(&mut stream, api.port, "/healthz").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let head_started = Instant::now();
    // What is left of the keep-alive timeout would close it 4.5 s from
    // here; the head timeout does at 1 s.
    assert!(
        closed_within(&mut stream, HEAD_TIMEOUT + Duration::from_millis(1500)).await,
        "still open {:?} into an unfinished head",
        head_started.elapsed()
    );
}

/// A keep-alive timeout shorter than the head timeout still closes an idle
/// connection on time: the server looks at it at least that often.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_timeout_shorter_than_the_head_timeout_is_kept() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = ApiProcess::start(&db, with_timeouts(5, 1)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).await.unwrap();
    let reply = kept_alive_get(&mut stream, api.port, "/healthz").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let idle_since = Instant::now();
    // Closed after 1 s, long before the 5 s of the head timeout.
    assert!(
        closed_within(&mut stream, Duration::from_millis(2500)).await,
        "still open {:?} into a 1 s keep-alive",
        idle_since.elapsed()
    );
}

/// Timeouts set to "forever" are no timeouts, not an overflow of the clock:
/// requests are answered, kept-alive connections stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_set_to_forever_are_served() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = ApiProcess::start(&db, |env| {
        with_timeouts(u64::MAX, u64::MAX)(env);
        env.insert("REQUEST_TIMEOUT_SECONDS".into(), u64::MAX.to_string());
    })
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).await.unwrap();
    for _ in 0..2 {
        // A route that waits for the database, so the request timeout's
        // timer is set.
        let reply = kept_alive_get(&mut stream, api.port, "/readyz").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let log = api.log();
    assert!(!log.contains("panicked"), "{log}");
}
