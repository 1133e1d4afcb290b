#!/usr/bin/env bash
# `make compose-demo`: the cluster of docker-compose.yml up, the compose demo's scenarios run by the
# bench service with --target compose (report and headline table as `make demo` prints them), and
# everything down again with its volumes, also when a step fails. `compose/demo.sh down` only
# brings the project down (make compose-down).
#
#   COMPOSE_PROJECT   the compose project name (default rebalance-lab)
#   RESULTS_DIR       where results go (default ./results; mounted into bench as /results)
#   OUT               the demo's directory below it (default compose-demo-<time>)
#   SCENARIOS         other scenarios instead (library names, or files as bench sees them: /results/...)
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${STATE_DIR:-.state}
PROJECT=${COMPOSE_PROJECT:-rebalance-lab}
OUT=${OUT:-compose-demo-$(date +%Y%m%d-%H%M%S)}
read -r -a SCENARIOS <<<"${SCENARIOS:-compose-demo compose-demo-failover}"
SERVERS=(zk1 zk2 zk3 broker1 broker2 broker3)

read -r -a compose_cmd <<<"$(compose/engine.sh compose)"
compose=("${compose_cmd[@]}" --env-file "$STATE_DIR/compose.env" -p "$PROJECT")
# The scenarios' profile (fast) has no initial rebalance delay; the brokers must start with the same.
export INITIAL_REBALANCE_DELAY_MS=0

BENCH=$PROJECT-demo-bench
down() {
  docker rm -f "$BENCH" >/dev/null 2>&1 || true
  "${compose[@]}" --profile bench --profile members down -v --remove-orphans >/dev/null 2>&1 || true
}
if [ "${1:-}" = down ]; then
  if docker info >/dev/null 2>&1; then down; fi
  exit 0
fi
trap down EXIT
started=$(date +%s)
export RESULTS_DIR=${RESULTS_DIR:-$PWD/results}
mkdir -p "$RESULTS_DIR"
echo "compose project $PROJECT: starting ${SERVERS[*]}"
"${compose[@]}" up -d --quiet-pull --wait "${SERVERS[@]}"
scenario_args=()
for s in "${SCENARIOS[@]}"; do scenario_args+=(--scenario "$s"); done
# Detached, then waited for: Compose's `run` reports exit code 0 for any exit of the container
# against Debian's engine (20.10); `docker wait` returns the real one.
"${compose[@]}" run -d --name "$BENCH" bench \
  rebalance-lab demo --target compose "${scenario_args[@]}" --out "/results/$OUT" >/dev/null
docker logs -f "$BENCH" &
code=$(docker wait "$BENCH")
wait
if [ "$code" != 0 ]; then
  echo "the compose demo failed (exit $code); results in $RESULTS_DIR/$OUT" >&2
  exit "$code"
fi
echo "compose demo took $(( $(date +%s) - started )) s from cluster up; results in $RESULTS_DIR/$OUT"
