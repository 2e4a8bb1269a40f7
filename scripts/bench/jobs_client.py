#!/usr/bin/env python3
"""HTTP side of scripts/bench/jobs.sh: enqueues noop jobs through the API,
waits for them to succeed, measures idle enqueue-to-start latency and
summarises what the API reports about the jobs of a phase.

Standard library only. Every subcommand prints `key=value` lines on stdout
(for the shell script) and progress on stderr. Talks to BENCH_JOBS_URL
(e.g. http://127.0.0.1:18180) with the bearer token in BENCH_JOBS_TOKEN.
"""

import argparse
import http.client
import json
import math
import os
import random
import sys
import threading
import time
import urllib.parse
from datetime import datetime

PREFIX = "/api/v1"
TIMEOUT = 30  # seconds, per HTTP request


class Api:
    """One keep-alive HTTP/1.1 connection (one per thread)."""

    def __init__(self, base, token=None):
        url = urllib.parse.urlsplit(base)
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"refusing a non-loopback URL: {base}")
        self.host, self.port = url.hostname, url.port or 80
        self.token = token
        self.conn = None

    def request(self, method, path, body=None, form=None):
        headers = {}
        data = None
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            try:
                self.conn.request(method, PREFIX + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, raw
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed between requests: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, expect, **kwargs):
        status, raw = self.request(method, path, **kwargs)
        if status != expect:
            raise RuntimeError(f"{method} {path}: HTTP {status} (expected {expect}): {raw[:300]!r}")
        return json.loads(raw)

    def count(self, status):
        return self.json("GET", f"/jobs/?kind=noop&status={status}&limit=1", 200)["count"]


def api_from_env():
    return Api(os.environ["BENCH_JOBS_URL"], os.environ.get("BENCH_JOBS_TOKEN"))


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def out(**fields):
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.6f}"
        print(f"{key}={value}")
    sys.stdout.flush()


def enqueue(n, threads, ids_file):
    """Enqueues n noop jobs from `threads` keep-alive connections; returns
    (first request start, last response end) as time.time() values."""
    ids = []
    errors = []
    lock = threading.Lock()
    next_index = iter(range(n))
    body = {"kind": "noop", "payload": {"sleep_ms": 0}}

    def run():
        api = api_from_env()
        while True:
            with lock:
                if errors or next(next_index, None) is None:
                    return
            try:
                job = api.json("POST", "/jobs/", 202, body=body)
            except Exception as exc:  # noqa: BLE001 - reported, then fatal
                with lock:
                    errors.append(str(exc))
                return
            with lock:
                ids.append(job["id"])

    workers = [threading.Thread(target=run) for _ in range(threads)]
    start = time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    end = time.time()
    if errors:
        raise SystemExit(f"enqueue failed after {len(ids)} jobs: {errors[0]}")
    if len(set(ids)) != n:
        raise SystemExit(f"enqueue returned {len(set(ids))} distinct ids for {n} jobs")
    if ids_file:
        with open(ids_file, "w", encoding="utf-8") as f:
            f.write("\n".join(ids) + "\n")
    return start, end


def wait_finished(api, target, timeout, interval=0.02):
    """Polls until `target` noop jobs have succeeded (or succeeded + failed
    reach it); returns (time.time() when seen, succeeded, failed)."""
    deadline = time.monotonic() + timeout
    failed = 0
    last_failed_check = 0.0
    while True:
        succeeded = api.count("succeeded")
        now = time.monotonic()
        if now - last_failed_check >= 1.0:
            failed = api.count("failed")
            last_failed_check = now
        if succeeded >= target or succeeded + failed >= target:
            seen = time.time()
            return seen, succeeded, api.count("failed")
        if now > deadline:
            queued, running = api.count("queued"), api.count("running")
            raise SystemExit(
                f"timed out after {timeout} s: succeeded={succeeded} failed={failed} "
                f"queued={queued} running={running}, target {target}"
            )
        time.sleep(interval)


def cmd_login(args):
    api = Api(os.environ["BENCH_JOBS_URL"])
    token = api.json("POST", "/login/access-token", 200, form={"username": args.username, "password": args.password})
    print(token["access_token"])


def cmd_count(args):
    out(count=api_from_env().count(args.status))


def cmd_warmup(args):
    """Opens the api's database pool (and the client's connections) with
    reads, so the first measured writes do not pay for new connections."""
    errors = []

    def run():
        api = api_from_env()
        try:
            for _ in range(args.requests):
                api.json("GET", "/jobs/?limit=1", 200)
        except Exception as exc:  # noqa: BLE001 - reported, then fatal
            errors.append(str(exc))

    workers = [threading.Thread(target=run) for _ in range(args.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise SystemExit(f"warm-up failed: {errors[0]}")
    out(warmup_requests=args.threads * args.requests)


def cmd_enqueue(args):
    start, end = enqueue(args.n, args.threads, args.ids)
    out(enqueue_seconds=end - start, enqueue_rate=args.n / (end - start))


def cmd_wait(args):
    api = api_from_env()
    seen, succeeded, failed = wait_finished(api, args.target, args.timeout)
    out(seconds=seen - args.since, succeeded=succeeded, failed=failed)


def cmd_running(args):
    """Worker already running: enqueue n, wait for baseline + n succeeded."""
    api = api_from_env()
    start, end = enqueue(args.n, args.threads, args.ids)
    seen, succeeded, failed = wait_finished(api, args.baseline + args.n, args.timeout)
    out(
        enqueue_seconds=end - start,
        enqueue_rate=args.n / (end - start),
        seconds=seen - start,
        succeeded=succeeded,
        failed=failed,
    )


def cmd_latency(args):
    """Idle enqueue-to-start: one job at a time on an empty queue. A random
    pause before each enqueue keeps it out of step with a polling worker."""
    api = api_from_env()
    rng = random.Random(args.seed)
    samples = []
    for i in range(args.samples):
        time.sleep(rng.uniform(args.min_pause, args.max_pause))
        job = api.json("POST", "/jobs/", 202, body={"kind": "noop", "payload": {"sleep_ms": 0}})
        deadline = time.monotonic() + args.timeout
        while job["started_at"] is None or job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise SystemExit(f"sample {i}: job {job['id']} still {job['status']} after {args.timeout} s")
            time.sleep(0.005)
            job = api.json("GET", f"/jobs/{job['id']}", 200)
        if job["status"] != "succeeded":
            raise SystemExit(f"sample {i}: job {job['id']} ended {job['status']}: {job.get('last_error')}")
        samples.append((ts(job["started_at"]) - ts(job["created_at"])) * 1000)
    print("latency samples (ms): " + " ".join(f"{s:.1f}" for s in samples), file=sys.stderr)
    out(
        samples=len(samples),
        median_ms=median(samples),
        p90_ms=percentile(samples, 90),
        min_ms=min(samples),
        max_ms=max(samples),
    )


def cmd_stats(args):
    """What the API says about the jobs listed in --ids (after a phase)."""
    api = api_from_env()
    with open(args.ids, encoding="utf-8") as f:
        wanted = {line.strip() for line in f if line.strip()}
    found = {}
    skip = 0
    while True:
        page = api.json("GET", f"/jobs/?kind=noop&skip={skip}&limit=1000", 200)
        for job in page["data"]:
            if job["id"] in wanted:
                found[job["id"]] = job
        skip += len(page["data"])
        if not page["data"] or skip >= page["count"]:
            break
    jobs = list(found.values())
    statuses = {}
    for job in jobs:
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
    started = [j for j in jobs if j["started_at"]]
    finished = [j for j in jobs if j["finished_at"]]
    waits = [(ts(j["started_at"]) - ts(j["created_at"])) * 1000 for j in started]
    fields = {
        "jobs": len(jobs),
        "missing": len(wanted) - len(jobs),
        "statuses": ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
        "retried": sum(1 for j in jobs if j["attempts"] > 1),
        "errors": sum(1 for j in jobs if j.get("last_error")),
    }
    if started and finished:
        first_start = min(ts(j["started_at"]) for j in started)
        last_finish = max(ts(j["finished_at"]) for j in finished)
        first_created = min(ts(j["created_at"]) for j in jobs)
        fields.update(
            server_drain_seconds=last_finish - first_start,
            server_total_seconds=last_finish - first_created,
            wait_p50_ms=median(waits),
            wait_p99_ms=percentile(waits, 99),
        )
    out(**fields)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("login", help="print an access token")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("count", help="how many noop jobs have STATUS")
    p.add_argument("--status", default="succeeded")
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("warmup", help="GET /jobs/ from THREADS connections, REQUESTS times each")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--requests", type=int, default=50)
    p.set_defaults(func=cmd_warmup)

    p = sub.add_parser("enqueue", help="enqueue N noop jobs")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--ids", help="write the job ids here")
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("wait", help="wait until TARGET noop jobs have succeeded")
    p.add_argument("--target", type=int, required=True)
    p.add_argument("--since", type=float, required=True, help="epoch seconds the timing starts at")
    p.add_argument("--timeout", type=float, default=300)
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("running", help="enqueue N with the worker running; wait for them")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--baseline", type=int, required=True, help="succeeded noop jobs before")
    p.add_argument("--ids")
    p.add_argument("--timeout", type=float, default=300)
    p.set_defaults(func=cmd_running)

    p = sub.add_parser("latency", help="idle enqueue-to-start latency")
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--min-pause", type=float, default=0.1)
    p.add_argument("--max-pause", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("stats", help="summarise the jobs whose ids are in --ids")
    p.add_argument("--ids", required=True)
    p.set_defaults(func=cmd_stats)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
