//! Tag `users`: every row of the contract's table, on both databases.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{SUPERUSER, on_both_backends, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use shared_core::db::Backend;

on_both_backends!(
    superuser_lists_users_with_total_count_newest_first,
    superuser_creates_users_and_a_new_account_email_goes_out,
    create_user_rejects_a_taken_email_in_any_case,
    me_reads_and_updates,
    update_me_rejects_someone_elses_email,
    update_own_password,
    delete_me_takes_the_items_too,
    superusers_cannot_delete_themselves,
    signup_validates_and_rejects_taken_emails,
    read_user_by_id_rules,
    superuser_updates_a_user,
    superuser_deletes_a_user_and_their_items,
);

fn user_path(user: &Value) -> String {
    format!("/api/v1/users/{}", user["id"].as_str().unwrap())
}

async fn superuser_lists_users_with_total_count_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (first, _, _) = app.new_user().await;
    let (second, _, _) = app.new_user().await;
    let (status, page) = app.call(Method::GET, "/api/v1/users/?skip=0&limit=2", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 3, "count is the total, not the page length");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"][0]["id"], second["id"]);
    assert_eq!(page["data"][1]["id"], first["id"]);
    let (_, rest) = app.call(Method::GET, "/api/v1/users/?skip=2", Some(&admin), None).await;
    assert_eq!(rest["data"][0]["email"], SUPERUSER);
    assert_eq!(rest["count"], 3);
    let (_, beyond) = app.call(Method::GET, "/api/v1/users/?skip=10", Some(&admin), None).await;
    assert_eq!(beyond, json!({"data": [], "count": 3}), "the exact total past the end too");
    for bad in ["limit=0", "limit=1001", "skip=-1", "limit=ten"] {
        let (status, body) = app.call(Method::GET, &format!("/api/v1/users/?{bad}"), Some(&admin), None).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["detail"][0]["loc"][0], "query");
    }
    app.shutdown().await;
}

async fn superuser_creates_users_and_a_new_account_email_goes_out(backend: Backend) {
    let app = spawn_app_with(backend, |env| common::with_smtp(env, 2525)).await;
    let admin = app.superuser_token().await;
    let body = json!({"email": "new@example.com", "password": "password123", "is_superuser": true, "full_name": "New"});
    let (status, user) = app.call(Method::POST, "/api/v1/users/", Some(&admin), Some(body)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "new@example.com");
    assert_eq!(user["is_superuser"], true);
    assert_eq!(user["is_active"], true);
    assert!(user.get("hashed_password").is_none() && user.get("password").is_none());
    assert!(user["created_at"].as_str().is_some());
    app.token("new@example.com", "password123").await;
    let emails = app.queued_emails().await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].to, "new@example.com");
    assert!(emails[0].subject.contains("New account for user new@example.com"), "{}", emails[0].subject);
    app.shutdown().await;
}

async fn create_user_rejects_a_taken_email_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (_, _, email) = app.new_user().await;
    let body = json!({"email": email.to_uppercase(), "password": "password123"});
    let (status, body) = app.call(Method::POST, "/api/v1/users/", Some(&admin), Some(body)).await;
    assert_eq!(
        (status.as_u16(), body),
        (400, json!({"detail": "The user with this email already exists in the system."}))
    );
    app.shutdown().await;
}

async fn me_reads_and_updates(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token, _) = app.new_user().await;
    let (status, me) = app.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status.as_u16(), &me), (200, &user));
    let (status, updated) =
        app.call(Method::PATCH, "/api/v1/users/me", Some(&token), Some(json!({"full_name": "Renamed"}))).await;
    assert_eq!(status, 200);
    assert_eq!(updated["full_name"], "Renamed");
    assert_eq!(updated["email"], user["email"], "absent fields are left alone");
    let (_, cleared) =
        app.call(Method::PATCH, "/api/v1/users/me", Some(&token), Some(json!({"full_name": null}))).await;
    assert_eq!(cleared["full_name"], Value::Null);
    let (_, moved) =
        app.call(Method::PATCH, "/api/v1/users/me", Some(&token), Some(json!({"email": "moved@example.com"}))).await;
    assert_eq!(moved["email"], "moved@example.com");
    app.token("moved@example.com", "password123").await;
    app.shutdown().await;
}

async fn update_me_rejects_someone_elses_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token, _) = app.new_user().await;
    let (status, body) = app
        .call(Method::PATCH, "/api/v1/users/me", Some(&token), Some(json!({"email": SUPERUSER.to_uppercase()})))
        .await;
    assert_eq!((status.as_u16(), body), (409, json!({"detail": "User with this email already exists"})));
    app.shutdown().await;
}

async fn update_own_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token, email) = app.new_user().await;
    let path = "/api/v1/users/me/password";
    let wrong = app
        .call(
            Method::PATCH,
            path,
            Some(&token),
            Some(json!({"current_password": "not-my-password", "new_password": "another-pass"})),
        )
        .await;
    assert_eq!((wrong.0.as_u16(), wrong.1), (400, json!({"detail": "Incorrect password"})));
    let same = app
        .call(
            Method::PATCH,
            path,
            Some(&token),
            Some(json!({"current_password": "password123", "new_password": "password123"})),
        )
        .await;
    assert_eq!(
        (same.0.as_u16(), same.1),
        (400, json!({"detail": "New password cannot be the same as the current one"}))
    );
    let ok = app
        .call(
            Method::PATCH,
            path,
            Some(&token),
            Some(json!({"current_password": "password123", "new_password": "another-pass"})),
        )
        .await;
    assert_eq!((ok.0.as_u16(), ok.1), (200, json!({"message": "Password updated successfully"})));
    app.token(&email, "another-pass").await;
    app.shutdown().await;
}

async fn delete_me_takes_the_items_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token, _) = app.new_user().await;
    let (_, item) = app.call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": "mine"}))).await;
    let (status, body) = app.call(Method::DELETE, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status.as_u16(), body), (200, json!({"message": "User deleted successfully"})));
    let admin = app.superuser_token().await;
    let (status, _) = app.call(Method::GET, &user_path(&user), Some(&admin), None).await;
    assert_eq!(status, 404);
    let (status, _) =
        app.call(Method::GET, &format!("/api/v1/items/{}", item["id"].as_str().unwrap()), Some(&admin), None).await;
    assert_eq!(status, 404, "the user's items are gone");
    // The token of a deleted user: valid signature, no user.
    let (status, body) = app.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "User not found"})));
    app.shutdown().await;
}

async fn superusers_cannot_delete_themselves(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (status, body) = app.call(Method::DELETE, "/api/v1/users/me", Some(&admin), None).await;
    assert_eq!((status.as_u16(), body), (403, json!({"detail": "Super users are not allowed to delete themselves"})));
    let (_, me) = app.call(Method::GET, "/api/v1/users/me", Some(&admin), None).await;
    let (status, body) = app.call(Method::DELETE, &user_path(&me), Some(&admin), None).await;
    assert_eq!((status.as_u16(), body), (403, json!({"detail": "Super users are not allowed to delete themselves"})));
    app.shutdown().await;
}

async fn signup_validates_and_rejects_taken_emails(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, user) = app
        .call(
            Method::POST,
            "/api/v1/users/signup",
            None,
            Some(json!({"email": "Jane@Example.com", "password": "password123"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["email"], "Jane@example.com", "the domain is normalised like EmailStr");
    assert_eq!(user["full_name"], Value::Null);
    assert_eq!(user["is_superuser"], false);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/users/signup",
            None,
            Some(json!({"email": "jane@example.com", "password": "password123"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body),
        (400, json!({"detail": "The user with this email already exists in the system"}))
    );

    let (status, body) = app
        .call(Method::POST, "/api/v1/users/signup", None, Some(json!({"email": "not-an-email", "password": "short"})))
        .await;
    assert_eq!(status, 422);
    let types: Vec<&str> = body["detail"].as_array().unwrap().iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["value_error", "string_too_short"], "every problem at once: {body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "email"]));
    assert_eq!(body["detail"][1]["msg"], "String should have at least 8 characters");
    assert_eq!(body["detail"][1]["ctx"], json!({"min_length": 8}));
    let long = "x".repeat(129);
    let (status, body) = app
        .call(Method::POST, "/api/v1/users/signup", None, Some(json!({"email": "a@example.com", "password": long})))
        .await;
    assert_eq!((status.as_u16(), body["detail"][0]["type"].as_str()), (422, Some("string_too_long")));
    let (status, body) =
        app.call(Method::POST, "/api/v1/users/signup", None, Some(json!({"password": "password123"}))).await;
    assert_eq!((status.as_u16(), body["detail"][0]["type"].as_str()), (422, Some("missing")));
    app.shutdown().await;
}

async fn read_user_by_id_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (user, token, _) = app.new_user().await;
    let (other, _, _) = app.new_user().await;
    let (status, own) = app.call(Method::GET, &user_path(&user), Some(&token), None).await;
    assert_eq!((status.as_u16(), own), (200, user.clone()));
    let (status, body) = app.call(Method::GET, &user_path(&other), Some(&token), None).await;
    assert_eq!((status.as_u16(), body), (403, json!({"detail": "The user doesn't have enough privileges"})));
    let (status, any) = app.call(Method::GET, &user_path(&other), Some(&admin), None).await;
    assert_eq!((status.as_u16(), any), (200, other));
    let missing = format!("/api/v1/users/{}", uuid::Uuid::new_v4());
    let (status, body) = app.call(Method::GET, &missing, Some(&admin), None).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "User not found"})));
    let (status, body) = app.call(Method::GET, "/api/v1/users/not-a-uuid", Some(&admin), None).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "uuid_parsing");
    assert_eq!(body["detail"][0]["loc"], json!(["path", "user_id"]));
    app.shutdown().await;
}

async fn superuser_updates_a_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (user, _, email) = app.new_user().await;
    let body = json!({"full_name": "Changed", "password": "changed-password", "is_superuser": true});
    let (status, updated) = app.call(Method::PATCH, &user_path(&user), Some(&admin), Some(body)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["full_name"].as_str(), updated["is_superuser"].as_bool()), (Some("Changed"), Some(true)));
    app.token(&email, "changed-password").await;

    let missing = format!("/api/v1/users/{}", uuid::Uuid::new_v4());
    let (status, body) = app.call(Method::PATCH, &missing, Some(&admin), Some(json!({"full_name": "x"}))).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "The user with this id does not exist in the system"})));
    let (status, body) =
        app.call(Method::PATCH, &user_path(&user), Some(&admin), Some(json!({"email": SUPERUSER}))).await;
    assert_eq!((status.as_u16(), body), (409, json!({"detail": "User with this email already exists"})));
    app.shutdown().await;
}

async fn superuser_deletes_a_user_and_their_items(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (user, token, _) = app.new_user().await;
    for i in 0..3 {
        app.call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": format!("item {i}")}))).await;
    }
    let (status, body) = app.call(Method::DELETE, &user_path(&user), Some(&admin), None).await;
    assert_eq!((status.as_u16(), body), (200, json!({"message": "User deleted successfully"})));
    let (_, items) = app.call(Method::GET, "/api/v1/items/", Some(&admin), None).await;
    assert_eq!(items["count"], 0);
    let (status, body) = app.call(Method::DELETE, &user_path(&user), Some(&admin), None).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "User not found"})));
    app.shutdown().await;
}
