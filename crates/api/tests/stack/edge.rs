//! Requests through Caddy as a browser makes them: HTTPS to `localhost`,
//! verified against Caddy's internal root, and what the application must
//! do behind it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use ureq::http::{HeaderMap, Request};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::wait_for;

/// Where requests through Caddy go, and how they are verified.
#[derive(Clone)]
pub struct Edge {
    pub base: String,
    root: Certificate<'static>,
    agent: ureq::Agent,
}

/// A request's body: JSON, or a form as the frontend's login posts it.
pub enum Body<'a> {
    Empty,
    Json(Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// A response read whole; a request that got none has status 0 and the
/// error as its body.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

impl Edge {
    pub fn new(https_port: u16, ca_file: &Path) -> Self {
        let root = Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
        let base = format!("https://localhost:{https_port}");
        Self { base, agent: agent(Some(&root)), root }
    }

    /// The same edge through keep-alive connections of its own.
    pub fn own_connections(&self) -> Self {
        Self { agent: agent(Some(&self.root)), ..self.clone() }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, Body::Empty)
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Reply {
        call(&self.agent, method, &format!("{}{path}", self.base), token, body)
    }

    /// `url` requested with Caddy's root as the only trusted one.
    pub fn get_url(&self, url: &str) -> Reply {
        call(&self.agent, "GET", url, None, Body::Empty)
    }
}

/// An HTTP client that reports every status as it is and follows no
/// redirect; trusting only `root` when given.
pub fn agent(root: Option<&Certificate<'static>>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(40)));
    if let Some(root) = root {
        let roots = RootCerts::new_with_certs(std::slice::from_ref(root));
        config = config.tls_config(TlsConfig::builder().root_certs(roots).build());
    }
    config.build().into()
}

pub fn call(agent: &ureq::Agent, method: &str, url: &str, token: Option<&str>, body: Body) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let sent = match body {
        Body::Empty => agent.run(request.body(()).unwrap()),
        Body::Json(value) => {
            agent.run(request.header("content-type", "application/json").body(value.to_string()).unwrap())
        }
        Body::Form(fields) => {
            let form = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
            agent.run(request.header("content-type", "application/x-www-form-urlencoded").body(form).unwrap())
        }
    };
    match sent {
        Ok(mut response) => {
            let body = response.body_mut().read_to_string().unwrap_or_else(|err| format!("(body lost: {err})"));
            Reply { status: response.status().as_u16(), headers: response.headers().clone(), body }
        }
        Err(err) => Reply { status: 0, headers: HeaderMap::new(), body: err.to_string() },
    }
}

/// What the edge and the application must do, end to end: /readyz, the
/// security headers, the HTTP redirect, signup and login, items CRUD, an
/// items_export job done by the worker, the superuser from its secret file,
/// and /metrics kept off the edge. Returns the new user's token.
pub fn app_checks(edge: &Edge, hsts_max_age: &str, http_port: u16, superuser: (&str, &str)) -> String {
    wait_for("GET /readyz through Caddy (TLS verified)", Duration::from_secs(10), || edge.get("/readyz").status == 200);
    let ready = edge.get("/readyz");
    let headers = [
        ("strict-transport-security", format!("max-age={hsts_max_age}; includeSubDomains")),
        ("x-content-type-options", "nosniff".into()),
        ("x-frame-options", "DENY".into()),
        ("referrer-policy", "strict-origin-when-cross-origin".into()),
        ("server", String::new()),
    ];
    for (name, value) in headers {
        assert_eq!(ready.header(name), value, "{name} through Caddy");
    }
    // Readiness passes with Redis unreachable (rate limits fall back to
    // per-process counters), so only its check says that a configured
    // Redis really takes the api's connections. It may not at once: the
    // api connects on first use, and a name lookup can stall for seconds
    // while containers start.
    let redis = if ready.json()["checks"].get("redis").is_some() {
        wait_for("/readyz: the configured Redis answers the api", Duration::from_secs(20), || {
            edge.get("/readyz").json()["checks"]["redis"]["status"] == "ok"
        });
        ", Redis answers the api"
    } else {
        ""
    };
    let plain =
        Request::get(format!("http://127.0.0.1:{http_port}/readyz")).header("host", format!("localhost:{http_port}"));
    let redirect = agent(None).run(plain.body(()).unwrap()).unwrap();
    assert_eq!(redirect.status(), 308, "plain HTTP redirects to HTTPS");
    println!("  ok    /readyz over HTTPS{redis}, security headers, HSTS max-age={hsts_max_age}, HTTP -> 308");

    let (email, password) =
        (format!("stack-{}@example.com", uuid::Uuid::new_v4().simple()), uuid::Uuid::new_v4().to_string());
    let signup = json!({"email": email, "password": password, "full_name": "Stack Test"});
    let reply = edge.call("POST", "/api/v1/users/signup", None, Body::Json(signup));
    assert_eq!(reply.status, 200, "signup: {}", reply.body);
    let token = login(edge, &email, &password);
    let auth = Some(token.as_str());

    let item = json!({"title": "stack test item", "description": "created through Caddy"});
    let reply = edge.call("POST", "/api/v1/items/", auth, Body::Json(item));
    assert_eq!(reply.status, 200, "POST /api/v1/items/: {}", reply.body);
    let item = format!("/api/v1/items/{}", reply.json()["id"].as_str().unwrap());
    let title = |reply: Reply| (reply.status, reply.json()["title"].clone());
    assert_eq!(title(edge.call("GET", &item, auth, Body::Empty)), (200, json!("stack test item")));
    let renamed = edge.call("PUT", &item, auth, Body::Json(json!({"title": "stack test item v2"})));
    assert_eq!(title(renamed), (200, json!("stack test item v2")));
    let listed = edge.call("GET", "/api/v1/items/", auth, Body::Empty);
    assert_eq!((listed.status, listed.json()["count"].clone()), (200, json!(1)), "{}", listed.body);

    let reply = edge.call("POST", "/api/v1/jobs/", auth, Body::Json(json!({"kind": "items_export", "payload": {}})));
    assert_eq!(reply.status, 202, "POST /api/v1/jobs/ items_export: {}", reply.body);
    let job = format!("/api/v1/jobs/{}", reply.json()["id"].as_str().unwrap());
    let status = || edge.call("GET", &job, auth, Body::Empty).json()["status"].clone();
    let finished = || ["succeeded", "failed", "dead"].iter().any(|done| status() == *done);
    wait_for("the worker finishes the items_export job", Duration::from_secs(30), finished);
    assert_eq!(status(), "succeeded", "the worker runs the items_export job");
    let csv = edge.call("GET", &format!("{job}/result"), auth, Body::Empty);
    assert_eq!((csv.status, csv.header("content-type").split(';').next()), (200, Some("text/csv")), "{}", csv.body);
    assert!(csv.body.contains("stack test item v2"), "the CSV holds the item: {}", csv.body);
    assert_eq!(edge.call("DELETE", &item, auth, Body::Empty).status, 200);
    assert_eq!(edge.call("GET", &item, auth, Body::Empty).status, 404);
    println!("  ok    signup, login, items CRUD, an items_export job run by the worker and its CSV");

    login(edge, superuser.0, superuser.1);
    println!("  ok    superuser login (password from FIRST_SUPERUSER_PASSWORD_FILE)");
    for path in ["/metrics", "/metrics/anything"] {
        let reply = edge.get(path);
        assert_eq!(reply.status, 404, "GET {path} through Caddy");
        assert!(!reply.body.contains("# TYPE"), "Caddy's {path} answer has Prometheus content");
    }
    println!("  ok    /metrics answered 404 by Caddy");
    token
}

/// The login form as the frontend posts it; panics unless it succeeds.
pub fn login(edge: &Edge, email: &str, password: &str) -> String {
    let reply = edge.call(
        "POST",
        "/api/v1/login/access-token",
        None,
        Body::Form(&[("username", email), ("password", password)]),
    );
    assert_eq!(reply.status, 200, "login of {email}: {}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}
