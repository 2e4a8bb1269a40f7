//! An api process as one replica of compose's api service: its own address,
//! the port every replica shares, its own metrics listener.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::process::{Env, Process};
use super::{plain_get, served_by, wait_for};

/// How long an api stays down between its exit and its restart (a container
/// restart is not instant): requests must be routed around it meanwhile.
const DOWN: Duration = Duration::from_secs(3);
/// How long a restarted api may take to get load requests from Caddy again
/// (passive health: its failures are forgotten after fail_duration 2s).
const BACK_IN_ROTATION: Duration = Duration::from_secs(15);

pub struct Replica {
    pub n: usize,
    pub addr: &'static str,
    pub port: u16,
    pub metrics: u16,
    pub env: Env,
    dir: PathBuf,
    program: PathBuf,
    pub process: Option<Process>,
}

impl Replica {
    pub fn new(n: usize, addr: &'static str, port: u16, metrics: u16, env: Env, dir: &Path, program: &Path) -> Self {
        let (dir, program) = (dir.to_owned(), program.to_owned());
        Self { n, addr, port, metrics, env, dir, program, process: None }
    }

    pub fn start(&mut self) {
        let name = format!("api{}", self.n);
        self.process = Some(Process::start(&name, &self.dir, &self.env, &self.program, &["serve"]));
    }

    pub fn wait_ready(&mut self) {
        let (n, url) = (self.n, format!("http://{}:{}/readyz", self.addr, self.port));
        let process = self.process.as_mut().unwrap();
        wait_for(&format!("api #{n} ready"), Duration::from_secs(60), || {
            assert!(process.running(), "api #{n} exited before it was ready:\n{}", process.log_tail(20));
            plain_get(&url).status == 200
        });
    }

    /// SIGTERM, the exit, DOWN seconds down (the outage under test), a
    /// restart, ready, and load requests from Caddy again before anything
    /// else stops.
    pub fn restart(&mut self) {
        let (n, signalled) = (self.n, Instant::now());
        let process = self.process.take().unwrap();
        let tail = process.log_tail(5);
        let status = process.stop(Duration::from_secs(60));
        assert!(status.success(), "api #{n}: exit status {status} after SIGTERM:\n{tail}");
        let exited = signalled.elapsed();
        std::thread::sleep(DOWN);
        let restarted = Instant::now();
        self.start();
        self.wait_ready();
        let ready = Instant::now();
        wait_for(&format!("api #{n} back in Caddy's rotation"), BACK_IN_ROTATION, || served_by(self.metrics) > 0);
        println!(
            "  ok    api #{n}: exited {} ms after SIGTERM, down {DOWN:?}, ready {} ms after its restart, in Caddy's rotation {} ms later",
            exited.as_millis(),
            (ready - restarted).as_millis(),
            ready.elapsed().as_millis()
        );
    }
}
