"""Client of recovery_timing.sh: times password-recovery requests for a
registered and an unknown address, interleaved in random order on one
kept-alive connection, and prints one Markdown table row (without the
backend column): samples, both medians, their difference, and the share of
samples that the best single latency threshold classifies correctly."""

import http.client
import random
import statistics
import sys
import time


def sample(conn, email):
    started = time.perf_counter()
    conn.request("POST", f"/api/v1/password-recovery/{email}")
    response = conn.getresponse()
    response.read()
    took = time.perf_counter() - started
    if response.status != 200:
        sys.exit(f"{email}: HTTP {response.status}")
    return took


def best_threshold_accuracy(a, b):
    """The best share of correct guesses of "a or b" from one threshold."""
    labelled = sorted([(t, 0) for t in a] + [(t, 1) for t in b])
    total, best = len(labelled), 0.5
    below_a = below_b = 0
    for _, label in labelled:
        if label == 0:
            below_a += 1
        else:
            below_b += 1
        # "a below the threshold, b above" and the reverse rule.
        right = below_a + (len(b) - below_b)
        best = max(best, right / total, (total - right) / total)
    return best


def main():
    host, port, registered, samples = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    conn = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(20):  # warm-up
        sample(conn, registered)
        sample(conn, "nobody@example.com")
    order = ["registered"] * samples + ["unknown"] * samples
    random.shuffle(order)
    times = {"registered": [], "unknown": []}
    for n, which in enumerate(order):
        email = registered if which == "registered" else f"nobody-{n}@example.com"
        times[which].append(sample(conn, email))
    known, unknown = statistics.median(times["registered"]), statistics.median(times["unknown"])
    separable = best_threshold_accuracy(times["registered"], times["unknown"])
    print(
        f"{samples} | {known * 1000:.3f} ms | {unknown * 1000:.3f} ms | "
        f"{(known - unknown) * 1000:+.3f} ms | {separable * 100:.0f} %"
    )


main()
