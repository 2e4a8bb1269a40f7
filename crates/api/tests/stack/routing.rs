//! How Caddy routes: to every api found under the name `api` (none
//! configured statically), round robin, for the site `localhost` only; and
//! what stays off the edge (each process's metrics listener).

use serde_json::Value;

use super::edge::Edge;
use super::{Ports, plain_get, served_by};

const SPREAD_REQUESTS: u64 = 200;

pub fn check(edge: &Edge, ports: &Ports) {
    for (what, port) in [("api #1", ports.metrics[0]), ("worker", ports.worker_metrics)] {
        assert_eq!(plain_get(&format!("http://127.0.0.1:{port}/metrics")).status, 200, "{what}'s metrics listener");
    }
    let config = plain_get(&format!("http://127.0.0.1:{}/config/", ports.admin)).json();
    let mut upstreams = Vec::new();
    reverse_proxies(&config, &mut upstreams);
    assert_eq!(
        upstreams,
        [format!("a api:{} static=0", ports.api)],
        "Caddy's upstreams: DNS A records of the name api, the api port, none static"
    );
    println!("  ok    both metrics listeners serve /metrics; Caddy's upstreams: {upstreams:?}");

    let served = || ports.metrics.map(served_by);
    let before = served();
    let answered = (0..SPREAD_REQUESTS).filter(|_| edge.get("/api/v1/utils/health-check/").status == 200).count();
    let after = served();
    let spread = [after[0] - before[0], after[1] - before[1]];
    assert_eq!(answered as u64, SPREAD_REQUESTS, "requests through Caddy answered 200");
    assert!(
        spread[0] > 0 && spread[1] > 0 && spread[0] + spread[1] == SPREAD_REQUESTS,
        "spread over the two apis: {spread:?}"
    );
    let used = plain_get(&format!("http://127.0.0.1:{}/reverse_proxy/upstreams", ports.admin)).json();
    let mut used: Vec<&str> = used.as_array().unwrap().iter().filter_map(|u| u["address"].as_str()).collect();
    used.sort_unstable();
    assert_eq!(used, super::API_ADDRS.map(|addr| format!("{addr}:{}", ports.api)), "the upstreams Caddy used");
    let direct = format!("http://{}:{}/healthz", super::API_ADDRS[0], ports.api);
    assert_eq!(plain_get(&direct).status, 200, "the api's own port");
    // Caddy's certificate is for `localhost` only: a client that asks for
    // the address itself gets no certificate it can trust.
    let foreign = edge.get_url(&format!("https://127.0.0.1:{}/healthz", ports.https));
    assert_eq!(foreign.status, 0, "Caddy answered for another site name: {}", foreign.body);
    println!(
        "  ok    spread of {SPREAD_REQUESTS} requests over the apis (round robin): {spread:?}; no other site name served"
    );
}

/// Each reverse_proxy handler in Caddy's running config, as
/// "<dynamic source> <name>:<port> static=<static upstreams>".
fn reverse_proxies(node: &Value, found: &mut Vec<String>) {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match node {
        Value::Object(map) => {
            if map.get("handler").and_then(Value::as_str) == Some("reverse_proxy") {
                let dynamic = &map["dynamic_upstreams"];
                let fixed = map.get("upstreams").and_then(Value::as_array).map_or(0, Vec::len);
                let (source, name, port) = (text(&dynamic["source"]), text(&dynamic["name"]), text(&dynamic["port"]));
                found.push(format!("{source} {name}:{port} static={fixed}"));
            }
            map.values().for_each(|v| reverse_proxies(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| reverse_proxies(v, found)),
        _ => {}
    }
}
