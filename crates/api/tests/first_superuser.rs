//! Start-up data: the first superuser, created once even when several
//! replicas start together; the private route only in local.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use api::startup::Application;
use common::{SUPERUSER, TestDb, on_both_backends, settings_for, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::json;
use shared_core::db::{Backend, users};

on_both_backends!(
    two_replicas_starting_at_once_create_one_superuser,
    an_existing_superuser_is_left_alone,
    private_route_exists_only_in_local
);

async fn two_replicas_starting_at_once_create_one_superuser(backend: Backend) {
    let db = TestDb::new(backend).await;
    {
        // Migrate first, as `api migrate` does in a deploy, so both replicas race only on the insert.
        let conn = db.connect().await;
        shared_core::db::migrate::run(&conn).await.unwrap();
        conn.close().await;
    }
    let (a, b) =
        tokio::join!(Application::build(settings_for(&db, |_| {})), Application::build(settings_for(&db, |_| {})));
    let (a, b) = (a.expect("replica a starts"), b.expect("replica b starts"));
    let (page, count) = users::list(&a.state().db, 0, 10).await.unwrap();
    assert_eq!(count, 1);
    assert_eq!(page[0].email, SUPERUSER);
    assert!(page[0].is_superuser);
    drop((a, b));
}

async fn an_existing_superuser_is_left_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = users::find_by_email(&app.state.db, SUPERUSER).await.unwrap().unwrap();
    let again = Application::build(settings_for(&app.db, |env| {
        env.insert("FIRST_SUPERUSER_PASSWORD".into(), "a-different-password".into());
    }))
    .await
    .unwrap();
    let after = users::find_by_email(&again.state().db, SUPERUSER).await.unwrap().unwrap();
    assert_eq!(before.hashed_password, after.hashed_password, "the password is not reset");
}

async fn private_route_exists_only_in_local(backend: Backend) {
    let body = json!({"email": "p@example.com", "password": "password123", "full_name": "P"});
    let local = spawn_app(backend).await;
    let (status, user) = local.call(Method::POST, "/api/v1/private/users/", None, Some(body.clone())).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "p@example.com");
    local.shutdown().await;

    let staging = spawn_app_with(backend, |env| {
        env.insert("ENVIRONMENT".into(), "staging".into());
    })
    .await;
    let (status, answer) = staging.call(Method::POST, "/api/v1/private/users/", None, Some(body)).await;
    assert_eq!((status.as_u16(), answer), (404, json!({"detail": "Not Found"})));
    staging.shutdown().await;
}
