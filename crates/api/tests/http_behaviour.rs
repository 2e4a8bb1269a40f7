//! What every response shares, whatever the route: the contract's error
//! shapes, trailing-slash redirects, request ids, CORS and security headers.
//! Timeout and panic use routes made here but go through the real middleware
//! stack (`middleware::apply`), because the app itself has no slow or
//! panicking route.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, get};
use common::{TestDb, http_client, on_both_backends, settings_for, spawn_app, spawn_app_with, wait_until};
use reqwest::header;
use serde_json::{Value, json};
use shared_core::db::Backend;
use tokio::sync::Notify;

on_both_backends!(
    unknown_routes_and_wrong_methods_answer_in_detail_shape,
    trailing_slash_spellings_redirect_with_307,
    oversized_bodies_get_a_json_413,
    an_oversized_chunked_body_gets_a_json_413,
    request_ids_are_echoed_or_generated,
    cors_preflight_is_allowed_for_configured_origins_only,
    security_headers_are_on_every_response,
    head_responses_carry_no_body_over_http1_and_http2,
);

async fn unknown_routes_and_wrong_methods_answer_in_detail_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.http.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap(), json!({"detail": "Not Found"}));

    let wrong = app.http.delete(app.url("/api/v1/utils/health-check/")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()[header::CONTENT_TYPE], "application/json");
    assert!(wrong.headers()[header::ALLOW].to_str().unwrap().contains("GET"));
    assert_eq!(wrong.json::<Value>().await.unwrap(), json!({"detail": "Method Not Allowed"}));
    app.shutdown().await;
}

async fn trailing_slash_spellings_redirect_with_307(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.http.get(app.url("/api/v1/utils/health-check?x=1")).send().await.unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()[header::LOCATION], "/api/v1/utils/health-check/?x=1");

    // Following it lands on the route.
    let follow = reqwest::Client::new().get(app.url("/api/v1/utils/health-check")).send().await.unwrap();
    assert_eq!(follow.status(), 200);
    app.shutdown().await;
}

async fn oversized_bodies_get_a_json_413(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("MAX_BODY_BYTES".into(), "1024".into());
    })
    .await;
    let response = app.http.post(app.url("/api/v1/utils/health-check/")).body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "Request Entity Too Large"}));
    app.shutdown().await;
}

/// A body of unknown length (chunked, no Content-Length) is cut off at
/// MAX_BODY_BYTES as the route reads it: a JSON 413, not a 422 or a 500.
async fn an_oversized_chunked_body_gets_a_json_413(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("MAX_BODY_BYTES".into(), "1024".into());
    })
    .await;
    let url = reqwest::Url::parse(&app.url("/")).unwrap();
    let mut stream = tokio::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).await.unwrap();
    let form = format!("username=admin%40example.com&password={}", "x".repeat(4096));
    let request = format!(
        "POST /api/v1/login/access-token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{form}\r\n0\r\n\r\n",
        form.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut reply).await.unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.ends_with(r#"{"detail":"Request Entity Too Large"}"#), "{reply}");
    app.shutdown().await;
}

async fn request_ids_are_echoed_or_generated(backend: Backend) {
    let app = spawn_app(backend).await;
    let given = app.http.get(app.url("/healthz")).header("x-request-id", "abc-123.def").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "abc-123.def");

    let generated = app.http.get(app.url("/healthz")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    // An id that could forge log lines is replaced, not echoed.
    let hostile = app.http.get(app.url("/healthz")).header("x-request-id", "a\"}{evil").send().await.unwrap();
    assert_ne!(hostile.headers()["x-request-id"], "a\"}{evil");

    // Error responses carry it too.
    let missing = app.http.get(app.url("/nope")).header("x-request-id", "req-404").send().await.unwrap();
    assert_eq!(missing.headers()["x-request-id"], "req-404");
    app.shutdown().await;
}

async fn cors_preflight_is_allowed_for_configured_origins_only(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("FRONTEND_HOST".into(), "https://app.example.com".into());
        env.insert("BACKEND_CORS_ORIGINS".into(), "https://admin.example.com".into());
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/utils/health-check/"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    for origin in ["https://app.example.com", "https://admin.example.com"] {
        let allowed = preflight(origin).await.unwrap();
        assert_eq!(allowed.status(), 200);
        assert_eq!(allowed.headers()["access-control-allow-origin"], origin);
        assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
        assert_eq!(allowed.headers()["access-control-allow-methods"], "POST");
    }
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    app.shutdown().await;
}

async fn security_headers_are_on_every_response(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/healthz", "/nope", "/docs"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(response.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(response.headers()["referrer-policy"], "strict-origin-when-cross-origin", "{path}");
    }
    app.shutdown().await;
}

/// A HEAD response has its length and no body, whichever layer made it:
/// the router's own answer, and the JSON error body the layers around the
/// router put on a 405. Over HTTP/2 a body on a HEAD response is a
/// protocol error for the client.
async fn head_responses_carry_no_body_over_http1_and_http2(backend: Backend) {
    let app = spawn_app(backend).await;
    let http2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    for client in [&app.http, &http2] {
        let ok = client.head(app.url("/healthz")).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()[header::CONTENT_LENGTH], r#"{"status":"ok"}"#.len().to_string());
        assert_eq!(ok.text().await.unwrap(), "");
        // POST only: a 405 whose body the JSON error layer writes.
        let wrong = client.head(app.url("/api/v1/login/access-token")).send().await.unwrap();
        assert_eq!(wrong.status(), 405);
        assert_eq!(wrong.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(wrong.text().await.unwrap(), "");
    }
    app.shutdown().await;
}

/// Serves `routes` behind the app's real middleware stack on a random port,
/// with the settings in `env`.
async fn serve_behind_middleware(routes: Router, env: &[(&str, &str)]) -> (String, TestDb) {
    let db = TestDb::new(Backend::Sqlite).await;
    let settings = settings_for(&db, |vars| {
        vars.extend(env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    });
    let tasks = api::middleware::RequestTasks::new(settings.http.max_in_flight_requests);
    let app = api::middleware::apply(routes, &settings.http, &tasks);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, tower::make::Shared::new(app)).await });
    (url, db)
}

/// Every CORS header of every kind of request, name by name and value by
/// value, as tower-http's `CorsLayer` (configured origins, credentials,
/// methods and headers mirrored) wrote them before the api answered CORS
/// itself: clients and caches see the same bytes.
#[tokio::test]
async fn cors_headers_are_those_of_a_credentialed_origin_list() {
    const VARY: &str = "origin, access-control-request-method, access-control-request-headers";
    let routes = Router::new()
        .route("/plain", get(|| async { "plain" }))
        .route("/varies", get(|| async { ([(header::VARY, "accept-encoding")], "varies") }));
    let (url, _db) = serve_behind_middleware(routes, &[("FRONTEND_HOST", "https://app.example.com")]).await;
    let client = http_client();
    let cors_headers = |response: &reqwest::Response| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("access-control-") || *name == header::VARY)
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
            .collect();
        found.sort();
        found
    };
    let expected = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        pairs.sort();
        pairs
    };
    let credentials = ("access-control-allow-credentials", "true");
    let allowed = ("access-control-allow-origin", "https://app.example.com");

    let send = |method: reqwest::Method, path: &str, headers: &[(&'static str, &'static str)]| {
        headers.iter().fold(client.request(method, format!("{url}{path}")), |r, (n, v)| r.header(*n, *v)).send()
    };
    let get = |path: &str, origin: Option<&'static str>| {
        let headers: &[_] = match origin {
            Some(origin) => &[("origin", origin)],
            None => &[],
        };
        send(reqwest::Method::GET, path, headers)
    };
    let response = get("/plain", Some("https://app.example.com")).await.unwrap();
    assert_eq!(cors_headers(&response), expected(&[credentials, allowed, ("vary", VARY)]));
    assert_eq!(response.text().await.unwrap(), "plain");
    let response = get("/plain", Some("https://evil.example.com")).await.unwrap();
    assert_eq!(cors_headers(&response), expected(&[credentials, ("vary", VARY)]));
    let response = get("/plain", None).await.unwrap();
    assert_eq!(cors_headers(&response), expected(&[credentials, ("vary", VARY)]));
    // A route's own Vary is kept, and CORS's is added beside it.
    let response = get("/varies", Some("https://app.example.com")).await.unwrap();
    assert_eq!(cors_headers(&response), expected(&[credentials, allowed, ("vary", "accept-encoding"), ("vary", VARY)]));

    // Any OPTIONS request is a preflight, answered 200 with an empty body
    // before the route, mirroring the method and headers asked for.
    let asked = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "DELETE"),
        ("access-control-request-headers", "authorization,x-custom"),
    ];
    let preflight = send(reqwest::Method::OPTIONS, "/plain", &asked).await.unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        cors_headers(&preflight),
        expected(&[
            credentials,
            allowed,
            ("access-control-allow-headers", "authorization,x-custom"),
            ("access-control-allow-methods", "DELETE"),
            ("vary", VARY),
        ])
    );
    assert_eq!(preflight.headers()["x-frame-options"], "DENY");
    assert!(preflight.headers().get(header::CONTENT_TYPE).is_none());
    assert_eq!(preflight.text().await.unwrap(), "");
    let asked = [("origin", "https://evil.example.com"), ("access-control-request-method", "DELETE")];
    let foreign = send(reqwest::Method::OPTIONS, "/plain", &asked).await.unwrap();
    assert_eq!(foreign.status(), 200);
    assert_eq!(
        cors_headers(&foreign),
        expected(&[credentials, ("access-control-allow-methods", "DELETE"), ("vary", VARY)])
    );
    let bare = send(reqwest::Method::OPTIONS, "/varies", &[]).await.unwrap();
    assert_eq!(bare.status(), 200);
    assert_eq!(cors_headers(&bare), expected(&[credentials, ("vary", VARY)]));
    // A path no route has is answered the same: CORS wraps the fallback too.
    let nowhere = send(reqwest::Method::OPTIONS, "/nowhere", &[("origin", "https://app.example.com")]).await.unwrap();
    assert_eq!(nowhere.status(), 200);
    assert_eq!(cors_headers(&nowhere), expected(&[credentials, allowed, ("vary", VARY)]));
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_json_500_and_the_server_keeps_serving() {
    let routes = Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "fine" }));
    let (url, _db) = serve_behind_middleware(routes, &[]).await;
    let client = http_client();

    let response = client.get(format!("{url}/boom")).header("x-request-id", "panic-1").send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "panic-1");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Internal Server Error", "request_id": "panic-1"})
    );
    // Same connection pool, same server: still serving.
    let after = client.get(format!("{url}/fine")).send().await.unwrap();
    assert_eq!(after.status(), 200);
}

/// `route`, served at /slow with REQUEST_TIMEOUT_SECONDS=1, answers a JSON 408.
async fn assert_times_out(route: MethodRouter) {
    let (url, _db) =
        serve_behind_middleware(Router::new().route("/slow", route), &[("REQUEST_TIMEOUT_SECONDS", "1")]).await;
    let response = http_client().get(format!("{url}/slow")).send().await.unwrap();
    assert_eq!(response.status(), 408);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "Request Timeout"}));
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_a_json_408() {
    assert_times_out(get(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }))
    .await;
}

/// A route that sets one of the security headers itself keeps its value,
/// once; the others are added.
#[tokio::test]
async fn a_security_header_a_route_sets_is_kept() {
    let routes = Router::new().route("/framed", get(|| async { ([("x-frame-options", "SAMEORIGIN")], "framed") }));
    let (url, _db) = serve_behind_middleware(routes, &[]).await;
    let response = http_client().get(format!("{url}/framed")).send().await.unwrap();
    let values = |name| response.headers().get_all(name).iter().collect::<Vec<_>>();
    assert_eq!(values("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(values("x-content-type-options"), ["nosniff"]);
    assert_eq!(values("referrer-policy"), ["strict-origin-when-cross-origin"]);
}

/// The timer starts only at a route's first wait, but its deadline counts
/// from the request's arrival: a route that works 0.9 s without a wait and
/// then waits 0.9 s more gets its 408 at 1 s, not its answer at 1.8 s (as a
/// deadline counted from the first wait, at 1.9 s, would give).
#[tokio::test]
async fn the_timeout_counts_from_the_requests_arrival_not_its_first_wait() {
    assert_times_out(get(|| async {
        std::thread::sleep(Duration::from_millis(900));
        tokio::time::sleep(Duration::from_millis(900)).await;
        "late"
    }))
    .await;
}

/// MAX_IN_FLIGHT_REQUESTS: a request beyond it waits for a slot and does
/// not start before one is free; then it runs as any other.
#[tokio::test]
async fn a_request_beyond_the_in_flight_limit_waits_for_a_slot() {
    let (release, started) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
    let count_start = |started: Arc<AtomicUsize>| move || started.fetch_add(1, Ordering::SeqCst);
    let (hold_started, count_started) = (count_start(started.clone()), count_start(started.clone()));
    let hold = {
        let release = release.clone();
        move || async move {
            hold_started();
            release.notified().await;
            "held"
        }
    };
    let count = move || async move {
        count_started();
        "counted"
    };
    let routes = Router::new().route("/hold", get(hold)).route("/count", get(count));
    let (url, _db) = serve_behind_middleware(routes, &[("MAX_IN_FLIGHT_REQUESTS", "1")]).await;
    let client = http_client();
    let held = tokio::spawn(client.get(format!("{url}/hold")).send());
    wait_until("/hold holds the only slot", Duration::from_secs(10), || async { started.load(Ordering::SeqCst) == 1 })
        .await;
    let waiting = tokio::spawn(client.get(format!("{url}/count")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "/count started while the only slot was taken");
    release.notify_one();
    assert_eq!(held.await.unwrap().unwrap().text().await.unwrap(), "held");
    assert_eq!(waiting.await.unwrap().unwrap().text().await.unwrap(), "counted");
    assert_eq!(started.load(Ordering::SeqCst), 2);
}
