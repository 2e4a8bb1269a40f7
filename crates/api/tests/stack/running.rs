//! The edge checks and the load of the stack test, against a stack it did
//! not start: scripts/container-test.sh's containers, so both tests judge
//! the edge by the same code. RUNNING_EDGE_* variables say where (a prefix
//! of their own: compose's EDGE_HTTPS_PORT and the like pick the ports the
//! stack publishes, and an exported one would override compose's .env):
//! RUNNING_EDGE_HTTPS_PORT, RUNNING_EDGE_HTTP_PORT, RUNNING_EDGE_CA_FILE
//! (Caddy's internal root), RUNNING_EDGE_HSTS_MAX_AGE,
//! RUNNING_EDGE_SUPERUSER and RUNNING_EDGE_SUPERUSER_PASSWORD; the load
//! (RUNNING_EDGE_LOAD_STREAMS streams of each kind at
//! RUNNING_EDGE_LOAD_RATE requests per second) runs until the file
//! RUNNING_EDGE_LOAD_STOP exists.

use std::path::Path;
use std::time::Duration;

use super::edge::{self, Edge};
use super::load::{self, Load};
use super::wait_for;

struct RunningEdge {
    edge: Edge,
    http_port: u16,
    superuser: (String, String),
}

impl RunningEdge {
    fn from_env() -> Self {
        let edge = Edge::new(number("RUNNING_EDGE_HTTPS_PORT"), Path::new(&var("RUNNING_EDGE_CA_FILE")));
        let superuser = (var("RUNNING_EDGE_SUPERUSER"), var("RUNNING_EDGE_SUPERUSER_PASSWORD"));
        Self { edge, http_port: number("RUNNING_EDGE_HTTP_PORT"), superuser }
    }
}

pub fn app_checks() {
    let running = RunningEdge::from_env();
    let superuser = (running.superuser.0.as_str(), running.superuser.1.as_str());
    edge::app_checks(&running.edge, &var("RUNNING_EDGE_HSTS_MAX_AGE"), running.http_port, superuser);
}

pub fn load_until_told() {
    let running = RunningEdge::from_env();
    let token = edge::login(&running.edge, &running.superuser.0, &running.superuser.1);
    let load =
        Load::start(&running.edge, &token, number("RUNNING_EDGE_LOAD_STREAMS"), number("RUNNING_EDGE_LOAD_RATE"));
    wait_for("load answered", Duration::from_secs(30), || load.fewest_answered() > 0);
    println!("load started");
    let stop = var("RUNNING_EDGE_LOAD_STOP");
    wait_for("the load's stop file", Duration::from_secs(1800), || Path::new(&stop).exists());
    load::report(&load.stop());
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: scripts/container-test.sh sets it"))
}

fn number<T: std::str::FromStr>(name: &str) -> T {
    var(name).parse().unwrap_or_else(|_| panic!("{name} is not a number"))
}
