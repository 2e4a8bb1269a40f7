//! The edge checks and the load of the stack test, against a stack it did
//! not start: scripts/container-test.sh's containers, so both tests judge
//! the edge by the same code. EDGE_* variables say where: EDGE_HTTPS_PORT,
//! EDGE_HTTP_PORT, EDGE_CA_FILE (Caddy's internal root), EDGE_HSTS_MAX_AGE,
//! EDGE_SUPERUSER and EDGE_SUPERUSER_PASSWORD; the load (EDGE_LOAD_STREAMS
//! streams of each kind at EDGE_LOAD_RATE requests per second) runs until
//! the file EDGE_LOAD_STOP exists.

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
        let edge = Edge::new(number("EDGE_HTTPS_PORT"), Path::new(&var("EDGE_CA_FILE")));
        let superuser = (var("EDGE_SUPERUSER"), var("EDGE_SUPERUSER_PASSWORD"));
        Self { edge, http_port: number("EDGE_HTTP_PORT"), superuser }
    }
}

pub fn app_checks() {
    let running = RunningEdge::from_env();
    let superuser = (running.superuser.0.as_str(), running.superuser.1.as_str());
    edge::app_checks(&running.edge, &var("EDGE_HSTS_MAX_AGE"), running.http_port, superuser);
}

pub fn load_until_told() {
    let running = RunningEdge::from_env();
    let token = edge::login(&running.edge, &running.superuser.0, &running.superuser.1);
    let load = Load::start(&running.edge, &token, number("EDGE_LOAD_STREAMS"), number("EDGE_LOAD_RATE"));
    wait_for("load answered", Duration::from_secs(30), || load.fewest_answered() > 0);
    println!("load started");
    let stop = var("EDGE_LOAD_STOP");
    wait_for("the load's stop file", Duration::from_secs(1800), || Path::new(&stop).exists());
    load::report(&load.stop());
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: scripts/container-test.sh sets it"))
}

fn number<T: std::str::FromStr>(name: &str) -> T {
    var(name).parse().unwrap_or_else(|_| panic!("{name} is not a number"))
}
