//! Rate limits (contract Part B), in memory and in Redis, including Redis
//! dying and coming back mid-traffic.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestApp, on_both_backends, redis_url, spawn_app_with, wait_until};
use serde_json::{Value, json};
use shared_core::db::Backend;

on_both_backends!(
    over_the_limit_is_a_429_with_retry_after,
    sixty_logins_a_minute_from_one_address_pass_with_the_shipped_defaults,
    one_accounts_failures_run_out_while_another_account_logs_in,
    the_per_address_failure_cap_holds_across_accounts,
    password_recovery_counts_per_address_and_per_email,
    two_replicas_share_the_failure_budget,
    authenticated_users_have_their_own_budget,
    forwarded_for_counts_only_from_trusted_proxies,
    two_instances_share_one_redis_budget,
    redis_failing_mid_traffic_falls_back_without_a_5xx_and_returns,
);

type Env = std::collections::HashMap<String, String>;

fn limits(env: &mut Env, general: u32, failures_per_account: u32) {
    env.insert("RATE_LIMIT_PER_MINUTE".into(), general.to_string());
    env.insert("LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE".into(), failures_per_account.to_string());
}

/// Every rate limit as shipped: the test harness's generous overrides removed.
fn shipped_limits(env: &mut Env) {
    env.retain(|name, _| !name.contains("_PER_MINUTE"));
}

/// A login attempt: the status and, on a 429, its Retry-After.
async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Option<u64>) {
    let form = [("username", email), ("password", password)];
    let response = app.http.post(app.url("/api/v1/login/access-token")).form(&form).send().await.unwrap();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status().as_u16(), retry)
}

async fn signup(app: &TestApp) -> String {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": "password123"});
    let response = app.http.post(app.url("/api/v1/users/signup")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    email
}

async fn get_status(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Option<u64>) {
    let mut request = app.http.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status().as_u16(), retry)
}

async fn over_the_limit_is_a_429_with_retry_after(backend: Backend) {
    let app = spawn_app_with(backend, |env| limits(env, 5, 5)).await;
    for _ in 0..5 {
        assert_eq!(get_status(&app, "/api/v1/utils/health-check/", &[]).await.0, 200);
    }
    let response = app.http.get(app.url("/api/v1/utils/health-check/")).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "Too many requests"}));
    // Probes are never limited.
    assert_eq!(get_status(&app, "/healthz", &[]).await.0, 200);
    assert_eq!(get_status(&app, "/readyz", &[]).await.0, 200);
    let metrics = app.http.get(app.metrics_url()).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"rate_limit_rejections_total{budget="general"}"#), "{metrics}");
    app.shutdown().await;
}

/// A person, a test suite or an office behind one address logs in many
/// times a minute: with the limits as shipped, none of it is refused.
async fn sixty_logins_a_minute_from_one_address_pass_with_the_shipped_defaults(backend: Backend) {
    let app = spawn_app_with(backend, shipped_limits).await;
    let email = signup(&app).await;
    // A few typing mistakes among them change nothing.
    for _ in 0..3 {
        assert_eq!(login(&app, &email, "wrong-password").await.0, 400);
    }
    for attempt in 0..60 {
        assert_eq!(login(&app, &email, "password123").await, (200, None), "login {attempt}");
    }
    app.shutdown().await;
}

async fn one_accounts_failures_run_out_while_another_account_logs_in(backend: Backend) {
    let app = spawn_app_with(backend, |env| limits(env, 1000, 3)).await;
    let (guessed, other) = (signup(&app).await, signup(&app).await);
    for _ in 0..3 {
        assert_eq!(login(&app, &guessed, "wrong-password").await.0, 400);
    }
    // Refused before the password is even checked, the right one included.
    for password in ["wrong-password", "password123"] {
        let (status, retry) = login(&app, &guessed, password).await;
        assert_eq!(status, 429);
        assert!(retry.is_some_and(|r| (1..=120).contains(&r)), "Retry-After: {retry:?}");
    }
    // The account is compared case-insensitively, as logins are.
    assert_eq!(login(&app, &guessed.to_uppercase(), "password123").await.0, 429);
    assert_eq!(login(&app, &other, "password123").await, (200, None), "another account is unaffected");
    let metrics = app.http.get(app.metrics_url()).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"rate_limit_rejections_total{budget="login_failures"}"#), "{metrics}");
    app.shutdown().await;
}

/// Failed logins and failed password resets share the per-address cap.
async fn the_per_address_failure_cap_holds_across_accounts(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        limits(env, 1000, 100);
        env.insert("LOGIN_FAILURES_PER_CLIENT_PER_MINUTE".into(), "4".into());
    })
    .await;
    let real = signup(&app).await;
    for n in 0..3 {
        assert_eq!(login(&app, &format!("nobody-{n}@example.com"), "wrong-password").await.0, 400);
    }
    let reset = json!({"token": "not-a-token", "new_password": "brand-new-pass"});
    let response = app.http.post(app.url("/api/v1/reset-password/")).json(&reset).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let (status, retry) = login(&app, &real, "password123").await;
    assert_eq!(status, 429, "the address has used its failures");
    assert!(retry.is_some());
    let response = app.http.post(app.url("/api/v1/reset-password/")).json(&reset).send().await.unwrap();
    assert_eq!(response.status(), 429);
    app.shutdown().await;
}

async fn password_recovery_counts_per_address_and_per_email(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("PASSWORD_RECOVERY_PER_EMAIL_PER_MINUTE".into(), "2".into());
        env.insert("PASSWORD_RECOVERY_PER_CLIENT_PER_MINUTE".into(), "5".into());
    })
    .await;
    let recover = |email: &'static str| app.http.post(app.url(&format!("/api/v1/password-recovery/{email}"))).send();
    for _ in 0..2 {
        assert_eq!(recover("target@example.com").await.unwrap().status(), 200);
    }
    let refused = recover("TARGET@example.com").await.unwrap();
    assert_eq!(refused.status(), 429, "one inbox gets at most 2 a minute");
    assert!(refused.headers().contains_key("retry-after"));
    // 3 of this address's 5 are spent (the refused request counted against
    // the address before its inbox refused it): two more, then no more.
    assert_eq!(recover("other@example.com").await.unwrap().status(), 200);
    assert_eq!(recover("third@example.com").await.unwrap().status(), 200);
    assert_eq!(recover("fourth@example.com").await.unwrap().status(), 429, "the address has used its 5");

    // Superuser-only routes are in none of these buckets, and logins are
    // not spent by recovery.
    let admin = app.superuser_token().await;
    let html = app
        .http
        .post(app.url("/api/v1/password-recovery-html-content/admin@example.com"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    app.shutdown().await;
}

async fn two_replicas_share_the_failure_budget(backend: Backend) {
    let url = redis_url();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let replica = || {
        spawn_app_with(backend, |env| {
            limits(env, 1000, 3);
            redis_env(env, &url, &prefix);
        })
    };
    let (a, b) = (replica().await, replica().await);
    let email = signup(&a).await;
    for app in [&a, &b, &a] {
        assert_eq!(login(app, &email, "wrong-password").await.0, 400);
    }
    assert_eq!(login(&b, &email, "password123").await.0, 429, "b saw a's failures");
    assert_eq!(login(&a, &email, "password123").await.0, 429);
    a.shutdown().await;
    b.shutdown().await;
}

async fn authenticated_users_have_their_own_budget(backend: Backend) {
    let app = spawn_app_with(backend, |env| limits(env, 6, 100)).await;
    // Signup and login spend two of this address's six.
    let (_, token, _) = app.new_user().await;
    let bearer = format!("Bearer {token}");
    for _ in 0..6 {
        assert_eq!(get_status(&app, "/api/v1/users/me", &[("authorization", &bearer)]).await.0, 200);
    }
    assert_eq!(get_status(&app, "/api/v1/users/me", &[("authorization", &bearer)]).await.0, 429);
    // The anonymous budget of the same address is separate.
    assert_eq!(get_status(&app, "/api/v1/utils/health-check/", &[]).await.0, 200);
    app.shutdown().await;
}

async fn forwarded_for_counts_only_from_trusted_proxies(backend: Backend) {
    let trusting = spawn_app_with(backend, |env| {
        limits(env, 2, 100);
        env.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            assert_eq!(
                get_status(&trusting, "/api/v1/utils/health-check/", &[("x-forwarded-for", client)]).await.0,
                200
            );
        }
        assert_eq!(get_status(&trusting, "/api/v1/utils/health-check/", &[("x-forwarded-for", client)]).await.0, 429);
    }
    trusting.shutdown().await;

    let untrusting = spawn_app_with(backend, |env| limits(env, 2, 100)).await;
    let statuses: Vec<u16> =
        futures_util::future::join_all(["198.51.100.1", "198.51.100.2", "198.51.100.3"].iter().map(|client| async {
            get_status(&untrusting, "/api/v1/utils/health-check/", &[("x-forwarded-for", client)]).await.0
        }))
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "a spoofed header buys no budget: {statuses:?}");
    untrusting.shutdown().await;
}

fn redis_env(env: &mut std::collections::HashMap<String, String>, url: &str, prefix: &str) {
    env.insert("REDIS_URL".into(), url.to_owned());
    env.insert("REDIS_KEY_PREFIX".into(), prefix.to_owned());
}

async fn redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn =
        client.get_multiplexed_async_connection().await.expect("TEST_REDIS_URL must point at a running Redis");
    redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap()
}

async fn two_instances_share_one_redis_budget(backend: Backend) {
    let url = redis_url();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let a = spawn_app_with(backend, |env| {
        limits(env, 6, 100);
        redis_env(env, &url, &prefix);
    })
    .await;
    let b = spawn_app_with(backend, |env| {
        limits(env, 6, 100);
        redis_env(env, &url, &prefix);
    })
    .await;
    for app in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(get_status(app, "/api/v1/utils/health-check/", &[]).await.0, 200);
    }
    assert_eq!(get_status(&a, "/api/v1/utils/health-check/", &[]).await.0, 429);
    assert_eq!(get_status(&b, "/api/v1/utils/health-check/", &[]).await.0, 429);
    assert!(!redis_keys(&url, &prefix).await.is_empty(), "the counters are in Redis");
    let ready: Value = a.http.get(a.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "ok");
    a.shutdown().await;
    b.shutdown().await;
}

/// A Redis server of the test's own, so it can be killed and restarted.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis_failing_mid_traffic_falls_back_without_a_5xx_and_returns(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = OwnRedis::start(port);
    let url = redis.url();
    let app = spawn_app_with(backend, |env| {
        limits(env, 100_000, 100);
        redis_env(env, &url, "fallback:");
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get_status(&app, "/api/v1/utils/health-check/", &[]).await.0);
    }
    assert!(!redis_keys(&url, "fallback:").await.is_empty());

    drop(redis);
    for _ in 0..50 {
        statuses.push(get_status(&app, "/api/v1/utils/health-check/", &[]).await.0);
    }
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "Redis down does not fail readiness");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "degraded");

    let redis = OwnRedis::start(port);
    // The limiter tries Redis again a while after a failure: traffic goes on
    // (and must not fail) until it counts in the new Redis.
    let statuses = std::sync::Mutex::new(statuses);
    wait_until("counting went back to Redis", Duration::from_secs(30), || async {
        let status = get_status(&app, "/api/v1/utils/health-check/", &[]).await.0;
        statuses.lock().unwrap().push(status);
        !redis_keys(&redis.url(), "fallback:").await.is_empty()
    })
    .await;
    let statuses = statuses.into_inner().unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "no request failed: {statuses:?}");
    let ready: Value = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "ok", "{ready}");
    app.shutdown().await;
}
