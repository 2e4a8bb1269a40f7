//! The jobs API and the worker together, as a client sees them: exports,
//! idempotency, ownership, emails delivered through the queue, and SQLite
//! with the api and the worker writing at once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../api/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::{TestApp, on_both_backends, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use shared_core::db::Backend;
use shared_core::testing::SmtpCatcher;
use support::spawn_worker;

on_both_backends!(
    an_export_is_run_by_the_worker_and_downloaded_as_csv,
    jobs_api_rules,
    idempotency_keys_return_the_existing_job_per_user,
    a_recovery_email_arrives_once_despite_refused_deliveries,
    api_and_worker_writing_at_once_lose_nothing,
);

async fn wait_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let path = format!("/api/v1/jobs/{id}");
    for _ in 0..300 {
        let (_, job) = app.call(Method::GET, &path, Some(token), None).await;
        if job["status"] == status {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} never reached {status}");
}

async fn an_export_is_run_by_the_worker_and_downloaded_as_csv(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let worker = spawn_worker(&app.db, |_| {});
    let (user, token, _) = app.new_user().await;
    for title in ["plain", "with, comma", "=cmd|' /C calc'!A0"] {
        app.call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": title, "description": "d"}))).await;
    }
    let (status, job) = app
        .call(Method::POST, "/api/v1/jobs/", Some(&token), Some(json!({"kind": "items_export", "payload": {}})))
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!((job["status"].as_str(), job["owner_id"].clone()), (Some("queued"), user["id"].clone()));
    let id = job["id"].as_str().unwrap();
    let done = wait_status(&app, &token, id, "succeeded").await;
    assert_eq!(done["attempts"], 1);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());

    let response =
        app.http.get(app.url(&format!("/api/v1/jobs/{id}/result"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,title,description,created_at");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(csv.contains("\"with, comma\""), "{csv}");
    assert!(csv.contains("'=cmd"), "formulas are defused: {csv}");
    worker.stop().await;
    app.shutdown().await;
}

async fn jobs_api_rules(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, alice, _) = app.new_user().await;
    let (_, bob, _) = app.new_user().await;
    let admin = app.superuser_token().await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, job) = app
        .call(Method::POST, "/api/v1/jobs/", Some(&alice), Some(json!({"kind": "items_export", "run_at": later})))
        .await;
    assert_eq!(status, 202);
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());

    let (status, body) = app.call(Method::GET, &format!("{path}/result"), Some(&alice), None).await;
    assert_eq!((status.as_u16(), body), (409, json!({"detail": "Job has not succeeded"})));
    let (status, body) = app.call(Method::GET, &path, Some(&bob), None).await;
    assert_eq!((status.as_u16(), body), (403, json!({"detail": "Not enough permissions"})));
    let (status, _) = app.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(status, 200, "a superuser sees every job");
    let (status, _) = app.call(Method::POST, &format!("{path}/cancel"), Some(&bob), None).await;
    assert_eq!(status, 403);
    let (status, cancelled) = app.call(Method::POST, &format!("{path}/cancel"), Some(&alice), None).await;
    assert_eq!((status.as_u16(), cancelled["status"].as_str()), (200, Some("cancelled")));
    let (status, body) = app.call(Method::POST, &format!("{path}/cancel"), Some(&alice), None).await;
    assert_eq!((status.as_u16(), body), (409, json!({"detail": "Job is no longer queued"})));
    let missing = format!("/api/v1/jobs/{}", uuid::Uuid::new_v4());
    let (status, body) = app.call(Method::GET, &missing, Some(&alice), None).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "Job not found"})));

    for (body, loc) in [
        (json!({"kind": "mine_bitcoin"}), "kind"),
        (json!({"kind": "send_email", "payload": {}}), "kind"),
        (json!({"kind": "items_export", "payload": {"unexpected": 1}}), "payload"),
        (json!({"kind": "items_export", "max_attempts": 0}), "max_attempts"),
        (json!({"kind": "items_export", "run_at": "tomorrow"}), "run_at"),
    ] {
        let (status, answer) = app.call(Method::POST, "/api/v1/jobs/", Some(&alice), Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["detail"][0]["loc"], json!(["body", loc]), "{body}");
    }
    let (status, body) = app.call(Method::POST, "/api/v1/jobs/", Some(&alice), Some(json!({"kind": "noop"}))).await;
    assert_eq!((status.as_u16(), body), (403, json!({"detail": "The user doesn't have enough privileges"})));
    let (status, _) = app.call(Method::POST, "/api/v1/jobs/", Some(&admin), Some(json!({"kind": "noop"}))).await;
    assert_eq!(status, 202);

    let (_, mine) = app.call(Method::GET, "/api/v1/jobs/?status=cancelled", Some(&alice), None).await;
    assert_eq!(mine["count"], 1);
    let (_, bobs) = app.call(Method::GET, "/api/v1/jobs/", Some(&bob), None).await;
    assert_eq!(bobs["count"], 0);
    let (_, all) = app.call(Method::GET, "/api/v1/jobs/?kind=noop", Some(&admin), None).await;
    assert_eq!(all["count"], 1);
    let (status, _) = app.call(Method::GET, "/api/v1/jobs/?status=exploded", Some(&alice), None).await;
    assert_eq!(status, 422);
    app.shutdown().await;
}

async fn idempotency_keys_return_the_existing_job_per_user(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, alice, _) = app.new_user().await;
    let (_, bob, _) = app.new_user().await;
    let body = json!({"kind": "items_export", "idempotency_key": "export-2026-11-22"});
    let (first_status, first) = app.call(Method::POST, "/api/v1/jobs/", Some(&alice), Some(body.clone())).await;
    let (again_status, again) = app.call(Method::POST, "/api/v1/jobs/", Some(&alice), Some(body.clone())).await;
    assert_eq!((first_status.as_u16(), again_status.as_u16()), (202, 202));
    assert_eq!(first["id"], again["id"]);
    let (_, bobs) = app.call(Method::POST, "/api/v1/jobs/", Some(&bob), Some(body)).await;
    assert_ne!(bobs["id"], first["id"], "keys are per user");
    let (_, listed) = app.call(Method::GET, "/api/v1/jobs/", Some(&alice), None).await;
    assert_eq!(listed["count"], 1);
    app.shutdown().await;
}

async fn a_recovery_email_arrives_once_despite_refused_deliveries(backend: Backend) {
    let catcher = SmtpCatcher::start().await;
    catcher.refuse_next(2);
    let smtp = |env: &mut std::collections::HashMap<String, String>| {
        common::with_smtp(env, catcher.port());
        env.insert("FRONTEND_HOST".into(), "https://dashboard.example.com".into());
    };
    let app = spawn_app_with(backend, smtp).await;
    let worker = spawn_worker(&app.db, smtp);
    let (_, _, email) = app.new_user().await;
    // An address nobody has is answered the same and mailed nothing.
    for address in ["nobody@example.com", email.as_str()] {
        let (status, _) = app.call(Method::POST, &format!("/api/v1/password-recovery/{address}"), None, None).await;
        assert_eq!(status, 200);
    }
    // Succeeded is final, and a stopped worker has finished all it started:
    // then the catcher holds every delivery there will be.
    let succeeded = shared_core::db::jobs::JobFilter {
        kind: Some(shared_core::jobs::kinds::JobKind::PasswordRecovery),
        status: Some(shared_core::db::jobs::JobStatus::Succeeded),
        ..Default::default()
    };
    common::wait_until("both recoveries succeeded", Duration::from_secs(30), || async {
        shared_core::db::jobs::list(&app.state.db, &succeeded, 0, 1).await.unwrap().1 == 2
    })
    .await;
    worker.stop().await;
    let messages = catcher.messages();
    assert_eq!(messages.len(), 1, "exactly one email, to the registered address");
    assert_eq!(messages[0].to, vec![email]);
    assert!(messages[0].html_body().contains("https://dashboard.example.com/reset-password?token="));
    app.shutdown().await;
}

/// Many clients writing through the api while the worker writes job
/// outcomes: on SQLite both contend for its single write lock. No request
/// and no job may see "database is locked".
async fn api_and_worker_writing_at_once_lose_nothing(backend: Backend) {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 25;
    let app = spawn_app_with(backend, |_| {}).await;
    let worker = spawn_worker(&app.db, |env| {
        env.insert("WORKER_CONCURRENCY".into(), "8".into());
    });
    let admin = app.superuser_token().await;
    let app = std::sync::Arc::new(app);
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (app, admin) = (app.clone(), admin.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..ROUNDS {
                let item = json!({"title": format!("client {client} round {round}")});
                statuses.push(app.call(Method::POST, "/api/v1/items/", Some(&admin), Some(item)).await.0.as_u16());
                let job = json!({"kind": "noop", "payload": {}});
                statuses.push(app.call(Method::POST, "/api/v1/jobs/", Some(&admin), Some(job)).await.0.as_u16());
            }
            statuses
        }));
    }
    for client in clients {
        let statuses = client.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200 || *s == 202), "{statuses:?}");
    }
    let (_, items) = app.call(Method::GET, "/api/v1/items/?limit=1", Some(&admin), None).await;
    assert_eq!(items["count"], CLIENTS * ROUNDS);
    // Only the noops: the worker's schedules add maintenance jobs of their own.
    let noops_done = || async {
        app.call(Method::GET, "/api/v1/jobs/?kind=noop&status=succeeded&limit=1", Some(&admin), None).await.1["count"]
            .clone()
    };
    for _ in 0..600 {
        if noops_done().await == CLIENTS * ROUNDS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(noops_done().await, CLIENTS * ROUNDS);
    let (_, failed) = app.call(Method::GET, "/api/v1/jobs/?status=failed", Some(&admin), None).await;
    assert_eq!(failed["count"], 0);
    let retried: i64 = shared_core::with_pool!(&app.state.db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE attempts <> 1 OR last_error IS NOT NULL"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(retried, 0, "no job needed a retry");
    worker.stop().await;
}
