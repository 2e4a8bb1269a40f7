#!/usr/bin/env bash
# Job-queue throughput and latency of the release api + worker, end to end
# through the HTTP API, for `noop` jobs ({"sleep_ms": 0}).
#
# For each backend (SQLite: a fresh file; Postgres: a fresh database) and each
# WORKER_CONCURRENCY (1 and 8), on a fresh database each time:
#  (a) drain: after a warm-up of reads (GET /api/v1/jobs/ from the same 8
#      connections, to open the api's database pool), with the worker
#      stopped, N (2000) jobs are enqueued through
#      POST /api/v1/jobs/ from 8 keep-alive connections (the enqueue rate);
#      then the worker starts and the time from its launch until all N have
#      succeeded is measured by polling the succeeded count (every 20 ms);
#      jobs/s = N / seconds (worker start-up included);
#  (a') enqueue while running: the worker running, N more are enqueued the
#      same way; time from the first enqueue until all have succeeded;
#  (b) idle enqueue-to-start latency: on an empty queue, 30 times: enqueue one
#      job (after a random 0.1-0.6 s pause, so as not to run in step with a
#      polling worker), poll it until it has finished, and take
#      started_at - created_at from its JobPublic (both server clocks).
# Before each measurement the script waits (up to BENCH_QUIET_WAIT s) until
# the CPUs are free of other work, and says so when it gave up waiting. The worker and api must exit 0 on SIGTERM; their WARN and
# ERROR log lines, failed and retried jobs are reported with the results.
#
# Prints the Markdown results on stdout (progress on stderr) and appends them
# under "## Job queue" in docs/benchmarks.md (BENCH_JOBS_DOC; empty: don't).
# Everything listens on 127.0.0.1 only; processes are stopped, databases
# dropped and the scratch directory removed on exit.
#
# Usage: scripts/bench/jobs.sh
# Settings (environment), besides those of scripts/bench/common.sh
# (CARGO_TARGET_DIR, BENCH_NO_BUILD, BENCH_BACKENDS, BENCH_POSTGRES_URL,
# BENCH_PORT, BENCH_METRICS_PORT, BENCH_QUIET_WAIT):
#   BENCH_JOBS_CONCURRENCY  "1 8"
#   BENCH_JOBS_N          2000 jobs per throughput run
#   BENCH_JOBS_THREADS    8 client connections enqueueing
#   BENCH_JOBS_SAMPLES    30 idle-latency samples
#   BENCH_JOBS_TIMEOUT    300 s at most for one phase's jobs to finish
#   BENCH_RAW_DIR         keep the api and worker logs here (default: discarded)
#   BENCH_JOBS_DOC        docs/benchmarks.md
# Worst-case duration: per measurement BENCH_QUIET_WAIT + BENCH_JOBS_TIMEOUT,
# 4 measurements per run, 4 runs (hours with the defaults if the machine
# never quietens; 15-25 min on an otherwise idle 2-core machine).
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CLIENT=$BENCH_DIR/jobs_client.py
CONCURRENCIES=${BENCH_JOBS_CONCURRENCY:-1 8}
N=${BENCH_JOBS_N:-2000}
THREADS=${BENCH_JOBS_THREADS:-8}
SAMPLES=${BENCH_JOBS_SAMPLES:-30}
PHASE_TIMEOUT=${BENCH_JOBS_TIMEOUT:-300}
RAW_DIR=${BENCH_RAW_DIR:-}
DOC=${BENCH_JOBS_DOC-$REPO_ROOT/docs/benchmarks.md}

ROWS=()
DETAILS=()
NOTES=()

# wait_quiet LABEL: waits for the CPUs to be free of other work (see
# wait_for_quiet); sets LOAD_NOTE to what was measured, and notes a measurement
# taken on a busy machine.
LOAD_NOTE=
wait_quiet() {
  wait_for_quiet
  LOAD_NOTE="CPU ${MACHINE_BUSY}% busy"
  ((MACHINE_BUSY <= 10)) || NOTES+=("$1: the CPUs were still ${MACHINE_BUSY}% busy with other work; measured anyway")
}

# start_worker CONCURRENCY: sets WORKER_PID. Its metrics listener takes any free port.
start_worker() {
  run_release worker WORKER_CONCURRENCY="$1" BACKUP_DIR="$WORK/backups" METRICS_ADDR=127.0.0.1:0
  WORKER_PID=$!
}

# stop_checked NAME PID: stops it and records a note unless it exits 0.
stop_checked() {
  local name=$1 pid=$2
  stop_pid "$pid"
  if [[ $STOP_STATUS != 0 ]]; then
    NOTES+=("$CASE: the $name exited with status $STOP_STATUS after SIGTERM")
    tail -n 20 "$WORK/$name.log" >&2
  fi
}

# client SUBCOMMAND ARGS...: runs jobs_client.py; its key=value lines go
# into the associative array R (R[seconds], R[enqueue_rate], ...).
declare -A R=()
client() {
  local output line
  output=$(python3 "$CLIENT" "$@") || die "$CASE: jobs_client.py $1 failed"
  R=()
  while IFS= read -r line; do
    [[ $line == *=* ]] || continue
    R[${line%%=*}]=${line#*=}
  done <<<"$output"
}

fmt() { awk -v v="$1" -v p="${2:-0}" 'BEGIN { printf "%.*f", p, v }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

# log_problems NAME: sets PROBLEMS to the number of WARN/ERROR lines in
# $WORK/NAME.log and notes their most frequent messages.
PROBLEMS=
log_problems() {
  local file=$WORK/$1.log count messages
  count=$(grep -c -E '"level":"(WARN|ERROR)"|(WARN|ERROR) ' "$file" || true)
  if ((count > 0)); then
    messages=$(grep -E '"level":"(WARN|ERROR)"|(WARN|ERROR) ' "$file" |
      sed -E -e 's/^.*"level":"([A-Z]+)".*"message":"([^"]*)"(.*"error":"([^"]{0,160}))?.*$/\1 \2 \4/' -e 's/ +$//' |
      sort | uniq -c | sort -rn | head -5 |
      awk '{ $1 = $1 "x"; print }' | paste -sd ';' -)
    NOTES+=("$CASE: $1 log has $count WARN/ERROR lines: $messages")
  fi
  PROBLEMS=$count
}

bench_case() {
  local backend=$1 concurrency=$2 token
  CASE="$backend, concurrency $concurrency"
  log "== $CASE"
  : >"$WORK/api.log"
  : >"$WORK/worker.log"
  new_database "$backend"
  start_api
  wait_ready
  token=$(python3 "$CLIENT" login --username "$BENCH_SUPERUSER" --password "$BENCH_SUPERUSER_PASSWORD") ||
    die "$CASE: cannot log in"
  export BENCH_JOBS_TOKEN=$token
  # Reads from as many connections as the enqueue uses: the api's pool is
  # open before the first measured write (a new Postgres connection costs
  # ~0.1 s here).
  client warmup --threads "$THREADS" --requests 50

  # (a) enqueue with the worker stopped, then drain.
  wait_quiet "$CASE, enqueue"
  local load_enqueue=$LOAD_NOTE
  client enqueue --n "$N" --threads "$THREADS" --ids "$WORK/ids-drain"
  local enqueue_rate=${R[enqueue_rate]}
  log "[$CASE] enqueued $N in $(fmt "${R[enqueue_seconds]}" 2) s ($(fmt "$enqueue_rate") jobs/s; $load_enqueue)"
  wait_quiet "$CASE, drain"
  local load_drain=$LOAD_NOTE since
  since=$(date +%s.%N)
  start_worker "$concurrency"
  client wait --target "$N" --since "$since" --timeout "$PHASE_TIMEOUT"
  local drain_seconds=${R[seconds]} drain_failed=${R[failed]}
  log "[$CASE] drained $N in $(fmt "$drain_seconds" 3) s ($(rate "$N" "$drain_seconds") jobs/s; $load_drain)"
  client stats --ids "$WORK/ids-drain"
  local drain_stats="statuses ${R[statuses]}, retried ${R[retried]}, missing ${R[missing]}"
  local drain_server
  drain_server="$(fmt "${R[server_drain_seconds]}" 3) s ($(rate "$N" "${R[server_drain_seconds]}") jobs/s)"

  # (a') enqueue while the worker runs.
  wait_quiet "$CASE, enqueue while running"
  local load_running=$LOAD_NOTE
  client running --n "$N" --threads "$THREADS" --baseline "$N" --ids "$WORK/ids-running" --timeout "$PHASE_TIMEOUT"
  local running_seconds=${R[seconds]} running_enqueue_rate=${R[enqueue_rate]} running_failed=${R[failed]}
  log "[$CASE] enqueue while running: $N in $(fmt "$running_seconds" 3) s ($(rate "$N" "$running_seconds") jobs/s; $load_running)"
  client stats --ids "$WORK/ids-running"
  local running_stats="statuses ${R[statuses]}, retried ${R[retried]}, missing ${R[missing]}"
  local running_wait
  running_wait="p50 $(fmt "${R[wait_p50_ms]}" 1) / p99 $(fmt "${R[wait_p99_ms]}" 1) ms"

  # (b) idle enqueue-to-start latency.
  wait_quiet "$CASE, idle latency"
  local load_latency=$LOAD_NOTE
  client latency --samples "$SAMPLES"
  log "[$CASE] idle enqueue-to-start: median $(fmt "${R[median_ms]}" 1) ms, p90 $(fmt "${R[p90_ms]}" 1) ms, max $(fmt "${R[max_ms]}" 1) ms ($load_latency)"
  local latency_median=${R[median_ms]} latency_p90=${R[p90_ms]} latency_max=${R[max_ms]}

  local failed_total
  client count --status failed
  failed_total=${R[count]}
  ((failed_total == 0)) || NOTES+=("$CASE: $failed_total noop jobs failed (drain: $drain_failed, while running: $running_failed)")

  stop_checked worker "$WORKER_PID"
  WORKER_PID=
  stop_checked api "$API_PID"
  API_PID=
  local api_problems worker_problems
  log_problems api
  api_problems=$PROBLEMS
  log_problems worker
  worker_problems=$PROBLEMS
  if [[ -n $RAW_DIR ]]; then
    cp "$WORK/api.log" "$RAW_DIR/jobs-$backend-c$concurrency-api.log"
    cp "$WORK/worker.log" "$RAW_DIR/jobs-$backend-c$concurrency-worker.log"
  fi
  drop_database

  ROWS+=("| $backend | $concurrency | $(fmt "$enqueue_rate") | $(rate "$N" "$drain_seconds") | $(rate "$N" "$running_seconds") | $(fmt "$latency_median" 1) | $(fmt "$latency_p90" 1) |")
  DETAILS+=("| $backend | $concurrency | $(fmt "$drain_seconds" 3) s | $drain_server | $(fmt "$running_seconds" 3) s | $(fmt "$running_enqueue_rate") | $running_wait | $(fmt "$latency_max" 1) | $failed_total | $drain_stats; $running_stats | $api_problems / $worker_problems | $load_enqueue; $load_drain; $load_running; $load_latency |")
}

machine_notes() {
  local cpu mem pg
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  pg=$(psql "$PG_ADMIN_URL" -qAtX -c 'SHOW server_version' 2>/dev/null || echo unknown)
  echo "Machine: $(nproc) cores ($cpu), $mem RAM, $(uname -sr); Postgres $pg on 127.0.0.1 (default settings);"
  echo "the client (python3, jobs_client.py), the api, the worker and the database all share these cores."
  provenance
}

report() {
  echo "| backend | worker concurrency | enqueue via API (jobs/s) | drain (jobs/s) | enqueue while running (jobs/s) | idle enqueue-to-start median (ms) | idle p90 (ms) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "N = $N noop jobs ({\"sleep_ms\": 0}) per throughput run, enqueued by $THREADS keep-alive connections;"
  echo "$SAMPLES idle-latency samples per row (median; p90 by nearest rank). Details:"
  echo
  echo "| backend | conc. | drain time (from worker launch) | drain, server side (first start to last finish) | enqueue-while-running time | its enqueue rate (jobs/s) | its enqueue-to-start under load | idle max (ms) | failed noop jobs | job states after each phase | WARN/ERROR log lines api / worker | other work before enqueue; drain; while running; idle |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
  printf '%s\n' "${DETAILS[@]}"
  echo
  machine_notes
  if ((${#NOTES[@]} > 0)); then
    echo
    echo "Notes from the run:"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
  fi
}

# append_doc FILE SECTION_FILE: adds the run under "## Job queue" (created at
# the end of FILE when missing), after any earlier runs and before the next
# "## " heading, leaving every other section as it is.
append_doc() {
  local file=$1 section=$2
  mkdir -p "$(dirname "$file")"
  [[ -e $file ]] || printf '# Benchmarks\n' >"$file"
  if ! grep -qx '## Job queue' "$file"; then
    {
      printf '\n## Job queue\n\n'
      printf '%s\n' "Measured by \`scripts/bench/jobs.sh\` (throughput and idle latency of \`noop\` jobs through the API and the worker)."
      cat "$section"
    } >>"$file"
    return
  fi
  local tmp
  tmp=$(mktemp "$file.XXXXXX")
  awk -v section="$section" '
    function dump(   line) { while ((getline line < section) > 0) print line; close(section); done = 1 }
    $0 == "## Job queue" { inside = 1; print; next }
    inside && /^## / { dump(); print ""; inside = 0 }
    { print }
    END { if (!done) dump() }
  ' "$file" >"$tmp"
  mv "$tmp" "$file"
}

main() {
  need python3 "apt-get install python3"
  bench_init
  export BENCH_JOBS_URL=$BASE_URL
  [[ -z $RAW_DIR ]] || mkdir -p "$RAW_DIR"

  local started backend concurrency
  started=$(date -u '+%Y-%m-%d %H:%M UTC')
  for backend in $BENCH_BACKENDS; do
    for concurrency in $CONCURRENCIES; do
      bench_case "$backend" "$concurrency"
    done
  done

  report >"$WORK/report.md"
  cat "$WORK/report.md"
  if [[ -n $DOC ]]; then
    {
      echo
      echo "### Run of $started"
      echo
      echo "Command: \`scripts/bench/jobs.sh\` (BENCH_BACKENDS=\"$BENCH_BACKENDS\", BENCH_JOBS_CONCURRENCY=\"$CONCURRENCIES\", N=$N)."
      echo
      cat "$WORK/report.md"
    } >"$WORK/section.md"
    append_doc "$DOC" "$WORK/section.md"
    log "appended the results to $DOC"
  fi
}

main "$@"
