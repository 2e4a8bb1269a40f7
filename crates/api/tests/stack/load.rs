//! A steady load through Caddy while the apis restart: streams of requests
//! at a fixed rate, each on keep-alive connections of its own, every answer
//! recorded. Zero downtime means every one of them is a 2xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use super::edge::{Body, Edge, Reply};

/// One request of the load: its stream's kind, its status (0: no answer),
/// what a failure said (`error`) and how long it took.
pub struct Sample {
    stream: &'static str,
    status: u16,
    seconds: f64,
    error: String,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Vec<Arc<AtomicUsize>>,
    streams: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// `streams` streams each of GET health-check and authenticated GET
    /// items at `rate` per second, and one of POST items (not idempotent:
    /// Caddy does not retry those once sent) at a quarter of that.
    pub fn start(edge: &Edge, token: &str, streams: usize, rate: u32) -> Self {
        let mut load = Self { stop: Arc::default(), answered: Vec::new(), streams: Vec::new() };
        for _ in 0..streams {
            load.stream(edge, "GET health-check", rate, |edge| edge.get("/api/v1/utils/health-check/"));
            let token = token.to_owned();
            load.stream(edge, "GET items", rate, move |edge| {
                edge.call("GET", "/api/v1/items/", Some(&token), Body::Empty)
            });
        }
        let token = token.to_owned();
        load.stream(edge, "POST items", rate.div_ceil(4), move |edge| {
            edge.call("POST", "/api/v1/items/", Some(&token), Body::Json(json!({"title": "written under load"})))
        });
        load
    }

    fn stream(
        &mut self,
        edge: &Edge,
        name: &'static str,
        rate: u32,
        request: impl Fn(&Edge) -> Reply + Send + 'static,
    ) {
        let edge = edge.own_connections();
        let (stop, answered) = (self.stop.clone(), Arc::new(AtomicUsize::new(0)));
        self.answered.push(answered.clone());
        self.streams.push(std::thread::spawn(move || {
            let (mut samples, interval) = (Vec::new(), Duration::from_secs(1) / rate);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let reply = request(&edge);
                // What a failure said, and its request id to find it in the
                // replicas' logs.
                let error = match reply.status {
                    0 => reply.body,
                    200..300 => String::new(),
                    _ => format!("{} (x-request-id {})", reply.body, reply.header("x-request-id")),
                };
                let seconds = started.elapsed().as_secs_f64();
                samples.push(Sample { stream: name, status: reply.status, seconds, error });
                answered.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(interval.saturating_sub(started.elapsed()));
            }
            samples
        }));
    }

    /// The fewest requests any stream has had answered so far.
    pub fn fewest_answered(&self) -> usize {
        self.answered.iter().map(|n| n.load(Ordering::Relaxed)).min().unwrap_or(0)
    }

    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.streams).into_iter().flat_map(|stream| stream.join().unwrap()).collect()
    }
}

impl Drop for Load {
    /// A test that fails mid-load stops its streams too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Prints the load's figures per kind of request and fails the test on any
/// request that was not answered 2xx.
/// The first line is read by scripts/container-test.sh: keep its shape.
pub fn report(samples: &[Sample]) {
    let answered_2xx = |s: &Sample| (200..300).contains(&s.status);
    let mut seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let at = |q: f64| seconds.get(((seconds.len() as f64 * q) as usize).min(seconds.len().saturating_sub(1)));
    println!(
        "  load: {} requests, {} failed, latency p50 {:.3}s p99 {:.3}s max {:.3}s",
        samples.len(),
        samples.iter().filter(|s| !answered_2xx(s)).count(),
        at(0.5).unwrap_or(&0.0),
        at(0.99).unwrap_or(&0.0),
        seconds.last().unwrap_or(&0.0)
    );
    let kinds: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.stream).collect();
    for kind in kinds {
        let of_kind: Vec<&Sample> = samples.iter().filter(|s| s.stream == kind).collect();
        let failed = of_kind.iter().filter(|s| !answered_2xx(s)).count();
        let max = of_kind.iter().map(|s| s.seconds).fold(0.0, f64::max);
        println!("        {kind:<18} {:6} sent {failed:4} failed  max {max:.3}s", of_kind.len());
    }
    assert!(!samples.is_empty(), "load: no request was sent");
    let failed: Vec<String> = samples
        .iter()
        .filter(|s| !answered_2xx(s))
        .map(|s| format!("{} -> {} {}", s.stream, s.status, s.error))
        .collect();
    assert!(
        failed.is_empty(),
        "load: {} of {} requests failed (non-2xx or no answer):\n{}",
        failed.len(),
        samples.len(),
        failed.join("\n")
    );
}
