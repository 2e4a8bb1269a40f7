//! The database goes away under load and comes back. The api and a worker
//! run against a Postgres cluster of the test's own, with clients writing
//! items and submitting jobs; the cluster is stopped for several seconds
//! and started again.
//!
//! While it is away: no 500, every 503 answered within a second with
//! `Retry-After`, `/readyz` answering 503 within a second. Afterwards: the
//! api and the worker recover by themselves, every acknowledged item is
//! there, every acknowledged job is done, and no job ran twice (jobs that
//! finished while their outcome could not be written keep retrying the
//! write instead of running again).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../api/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::own_postgres::OwnPostgres;
use common::{TestApp, TestDb, spawn_app_on};
use serde_json::{Value, json};
use support::spawn_worker;

const OUTAGE: Duration = Duration::from_secs(5);

/// What the clients saw.
#[derive(Default)]
struct Seen {
    items: Vec<String>,
    jobs: Vec<String>,
    /// (what, status, how long it took, whether it carried Retry-After)
    failures: Vec<(String, u16, Duration, bool)>,
    answered_during_outage: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_answered_fast_and_loses_nothing_acknowledged() {
    let cluster = Arc::new(tokio::task::spawn_blocking(OwnPostgres::start).await.unwrap());
    let db = TestDb::on_postgres(&cluster.admin_url()).await;
    // The api migrates; the worker only verifies, so it starts second. A
    // 3 s lease: shorter than the outage, so leases run out meanwhile.
    let app = spawn_app_on(db, |_| {}).await;
    let worker = spawn_worker(&app.db, |env| {
        env.insert("JOB_LEASE_SECONDS".into(), "3".into());
    });
    let app = Arc::new(app);
    let token = app.superuser_token().await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let outage = Arc::new(Mutex::new(None::<Instant>));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (app, token, seen, stop, outage) = (app.clone(), token.clone(), seen.clone(), stop.clone(), outage.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                // Every third request a job: half of them still running
                // when the database goes.
                let (path, body) = if n % 3 == 0 {
                    let sleep_ms = if n % 2 == 0 { 1500 } else { 0 };
                    ("/api/v1/jobs/", json!({"kind": "noop", "payload": {"sleep_ms": sleep_ms}}))
                } else {
                    ("/api/v1/items/", json!({"title": format!("client {client} item {n}")}))
                };
                let started = Instant::now();
                let response = app.http.post(app.url(path)).bearer_auth(&token).json(&body).send().await.unwrap();
                let took = started.elapsed();
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body: Value = response.json().await.unwrap_or(Value::Null);
                {
                    let mut seen = seen.lock().unwrap();
                    if outage.lock().unwrap().is_some() {
                        seen.answered_during_outage += 1;
                    }
                    match status {
                        200 => seen.items.push(body["id"].as_str().unwrap().to_owned()),
                        202 => seen.jobs.push(body["id"].as_str().unwrap().to_owned()),
                        _ => seen.failures.push((format!("POST {path}"), status, took, retry_after)),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await.unwrap();
    *outage.lock().unwrap() = Some(Instant::now());
    let mut readiness = Vec::new();
    while outage.lock().unwrap().unwrap().elapsed() < OUTAGE {
        let started = Instant::now();
        let status = app.http.get(app.url("/readyz")).send().await.unwrap().status().as_u16();
        readiness.push((status, started.elapsed()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.resume()).await.unwrap();
    *outage.lock().unwrap() = None;

    // Recovered by itself: readiness comes back, then writes succeed again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.http.get(app.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the api did not become ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_at = seen.lock().unwrap().items.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    assert!(seen.answered_during_outage > 10, "the clients were not answered during the outage");
    assert!(seen.items.len() > recovered_at, "no item was written after the database came back");
    let wrong: Vec<_> = seen.failures.iter().filter(|(_, status, _, _)| *status != 503).collect();
    assert!(wrong.is_empty(), "answers other than 503 during the outage: {wrong:?}");
    let slow: Vec<_> = seen.failures.iter().filter(|(_, _, took, _)| *took >= Duration::from_secs(1)).collect();
    assert!(slow.is_empty(), "503s slower than a second: {slow:?}");
    assert!(seen.failures.iter().all(|(_, _, _, retry)| *retry), "a 503 without Retry-After");
    assert!(!seen.failures.is_empty(), "no request failed: was the database really stopped?");
    assert!(readiness.iter().any(|(status, _)| *status == 503), "/readyz never said 503: {readiness:?}");
    assert!(readiness.iter().all(|(_, took)| *took < Duration::from_secs(1)), "/readyz was slow: {readiness:?}");
    let worst = seen.failures.iter().map(|(_, _, took, _)| *took).max().unwrap();
    println!(
        "{} items and {} jobs acknowledged, {} answered 503 (slowest {worst:?}), /readyz: {readiness:?}",
        seen.items.len(),
        seen.jobs.len(),
        seen.failures.len()
    );

    every_item_is_there(&app, &token, &seen.items).await;
    every_job_ran_exactly_once(&app, &token, &seen.jobs).await;
    worker.stop().await;
}

async fn every_item_is_there(app: &TestApp, token: &str, acknowledged: &[String]) {
    let (_, page) = app.call(reqwest::Method::GET, "/api/v1/items/?limit=1000", Some(token), None).await;
    let stored: Vec<&str> = page["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    let missing: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(&id.as_str())).collect();
    assert!(missing.is_empty(), "{} acknowledged items are missing: {missing:?}", missing.len());
}

async fn every_job_ran_exactly_once(app: &TestApp, token: &str, acknowledged: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in acknowledged {
        let job = loop {
            let (_, job) = app.call(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), Some(token), None).await;
            if job["status"] == "succeeded" || job["status"] == "failed" {
                break job;
            }
            assert!(Instant::now() < deadline, "job {id} not done: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "job {id} ran more than once: {job}");
    }
}
