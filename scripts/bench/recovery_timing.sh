#!/usr/bin/env bash
# recovery_timing.sh: does POST /api/v1/password-recovery/{email} answer a
# registered address measurably differently from an unknown one? For each
# backend, 200 samples of each, interleaved in random order on one kept-alive
# connection, with email enabled (the path that does work); prints the
# median difference and the share of samples the best single latency
# threshold tells apart (50 % = indistinguishable, 100 % = always).
#
#   bash scripts/bench/recovery_timing.sh            # settings: see common.sh
#   RECOVERY_SAMPLES=500 bash scripts/bench/recovery_timing.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SAMPLES=${RECOVERY_SAMPLES:-200}
need python3 "apt-get install python3"
bench_init

printf '| backend | samples each | median registered | median unknown | difference | separable |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: |\n'
for backend in $BENCH_BACKENDS; do
  new_database "$backend"
  # shellcheck disable=SC2034 # read by wait_ready
  API_LOG=$WORK/api.log
  # Email on (nothing listens on the SMTP port: the api only queues), and
  # no recovery budget in the way of the samples.
  run_release api SMTP_HOST=127.0.0.1 SMTP_PORT=9 SMTP_TLS=false EMAILS_FROM_EMAIL=bench@example.com \
    PASSWORD_RECOVERY_PER_CLIENT_PER_MINUTE=1000000000 PASSWORD_RECOVERY_PER_EMAIL_PER_MINUTE=1000000000
  API_PID=$!
  wait_ready
  signup_and_login registered@example.com bench-password-1 >/dev/null
  row=$(python3 "$BENCH_DIR/recovery_timing.py" "127.0.0.1" "$BENCH_PORT" registered@example.com "$SAMPLES")
  printf '| %s | %s |\n' "$backend" "$row"
  stop_api
  drop_database
done
