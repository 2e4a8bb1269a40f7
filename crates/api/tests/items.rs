//! Tag `items`: every row of the contract's table, on both databases.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{on_both_backends, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use shared_core::db::Backend;

on_both_backends!(
    create_and_read_own_items_newest_first,
    superusers_see_every_item,
    read_update_delete_one_item,
    item_errors,
);

fn item_path(item: &Value) -> String {
    format!("/api/v1/items/{}", item["id"].as_str().unwrap())
}

async fn create_and_read_own_items_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token, _) = app.new_user().await;
    let (_, other_token, _) = app.new_user().await;
    app.call(Method::POST, "/api/v1/items/", Some(&other_token), Some(json!({"title": "not yours"}))).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let (status, item) = app
            .call(
                Method::POST,
                "/api/v1/items/",
                Some(&token),
                Some(json!({"title": format!("item {i}"), "description": "d"})),
            )
            .await;
        assert_eq!(status, 200, "{item}");
        assert_eq!(item["owner_id"], user["id"]);
        created.push(item);
    }
    let (status, page) = app.call(Method::GET, "/api/v1/items/?limit=2", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 5);
    assert_eq!(page["data"], json!([created[4], created[3]]));
    let (_, tail) = app.call(Method::GET, "/api/v1/items/?skip=4&limit=100", Some(&token), None).await;
    assert_eq!(tail["data"], json!([created[0]]));
    assert_eq!(tail["count"], 5);
    // Past the end there is no row to carry the count: still the exact total.
    let (status, beyond) = app.call(Method::GET, "/api/v1/items/?skip=50&limit=10", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(beyond, json!({"data": [], "count": 5}));
    let (_, nobody, _) = app.new_user().await;
    let (_, empty) = app.call(Method::GET, "/api/v1/items/", Some(&nobody), None).await;
    assert_eq!(empty, json!({"data": [], "count": 0}));
    let (_, empty_beyond) = app.call(Method::GET, "/api/v1/items/?skip=3", Some(&nobody), None).await;
    assert_eq!(empty_beyond, json!({"data": [], "count": 0}));
    app.shutdown().await;
}

async fn superusers_see_every_item(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    for _ in 0..2 {
        let (_, token, _) = app.new_user().await;
        app.call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": "t"}))).await;
    }
    let (_, page) = app.call(Method::GET, "/api/v1/items/", Some(&admin), None).await;
    assert_eq!(page["count"], 2);
    app.shutdown().await;
}

async fn read_update_delete_one_item(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token, _) = app.new_user().await;
    let (_, item) = app
        .call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": "old", "description": "keep"})))
        .await;
    let path = item_path(&item);
    let (status, read) = app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!((status.as_u16(), &read), (200, &item));

    let (status, updated) = app.call(Method::PUT, &path, Some(&token), Some(json!({"title": "new"}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (updated["title"].as_str(), updated["description"].as_str()),
        (Some("new"), Some("keep")),
        "partial update"
    );
    assert_eq!(
        (updated["id"].clone(), updated["created_at"].clone()),
        (item["id"].clone(), item["created_at"].clone())
    );
    let (_, cleared) = app.call(Method::PUT, &path, Some(&token), Some(json!({"description": null}))).await;
    assert_eq!(cleared["description"], Value::Null);

    let admin = app.superuser_token().await;
    let (status, _) = app.call(Method::PUT, &path, Some(&admin), Some(json!({"title": "by admin"}))).await;
    assert_eq!(status, 200, "a superuser may change anyone's item");

    let (status, body) = app.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!((status.as_u16(), body), (200, json!({"message": "Item deleted successfully"})));
    let (status, body) = app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "Item not found"})));
    app.shutdown().await;
}

async fn item_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token, _) = app.new_user().await;
    let missing = format!("/api/v1/items/{}", uuid::Uuid::new_v4());
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = app.call(method, &missing, Some(&token), None).await;
        assert_eq!((status.as_u16(), body), (404, json!({"detail": "Item not found"})));
    }
    let (status, body) = app.call(Method::PUT, &missing, Some(&token), Some(json!({"title": "x"}))).await;
    assert_eq!((status.as_u16(), body), (404, json!({"detail": "Item not found"})));
    let (status, body) = app.call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": ""}))).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "string_too_short");
    assert_eq!(body["detail"][0]["msg"], "String should have at least 1 character");
    let (status, body) = app
        .call(Method::POST, "/api/v1/items/", Some(&token), Some(json!({"title": "t", "description": "d".repeat(256)})))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "description"]));
    assert_eq!(body["detail"][0]["ctx"], json!({"max_length": 255}));
    app.shutdown().await;
}
