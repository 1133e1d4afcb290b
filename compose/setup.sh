#!/usr/bin/env bash
# `make compose-setup`: everything a compose run needs, each part only when missing (idempotent).
#
#  1. the engine and Compose (compose/engine.sh install), dockerd started unless one answers;
#  2. the images: the official python and zookeeper images when they can be pulled, else a Debian
#     base built here (compose/base-image/build.sh) and ZooKeeper from Debian's package on it
#     (compose/zookeeper); the choice is printed and kept in STATE_DIR/compose.env for docker compose;
#  3. the project image (Dockerfile) on that base; Docker's layer cache makes a rebuild of unchanged
#     files take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${STATE_DIR:-.state}
ENV_FILE=$STATE_DIR/compose.env
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim}
OFFICIAL_ZK_IMAGE=${OFFICIAL_ZK_IMAGE:-zookeeper:3.8}
LOCAL_BASE=rebalance-lab-base:bookworm
LOCAL_ZK_IMAGE=rebalance-lab-zookeeper:3.8
PROJECT_IMAGE=rebalance-lab:latest

compose/engine.sh install
compose/engine.sh start
mkdir -p "$STATE_DIR"

# An image that is here, or that a pull brings: 0; no registry reachable: 1 (the pull's error printed).
have_or_pull() {
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  local err
  if err=$(timeout 120 docker pull -q "$1" 2>&1 >/dev/null); then return 0; fi
  echo "  cannot pull $1: ${err##*$'\n'}"
  return 1
}

if have_or_pull "$PYTHON_IMAGE"; then
  base=$PYTHON_IMAGE
  echo "base image: $base (pulled)"
else
  compose/base-image/build.sh "$LOCAL_BASE"
  base=$LOCAL_BASE
  echo "base image: $base (built here with mmdebstrap, compose/base-image/build.sh)"
fi

if have_or_pull "$OFFICIAL_ZK_IMAGE"; then
  zk_image=$OFFICIAL_ZK_IMAGE
  echo "ZooKeeper image: $zk_image (pulled)"
else
  compose/base-image/build.sh "$LOCAL_BASE"
  docker build -q --force-rm --network host --build-arg BASE_IMAGE="$LOCAL_BASE" -t "$LOCAL_ZK_IMAGE" compose/zookeeper >/dev/null
  zk_image=$LOCAL_ZK_IMAGE
  echo "ZooKeeper image: $zk_image (built here from Debian's zookeeper package, compose/zookeeper)"
fi

# pip inside the build uses the host's index and CA settings, passed as build arguments (never
# written into a file). The local base carries the host's CA bundle at the system path.
build_args=(--build-arg BASE_IMAGE="$base")
index=${PIP_INDEX_URL:-$(.venv/bin/pip config get global.index-url 2>/dev/null || true)}
if [ -n "$index" ]; then build_args+=(--build-arg PIP_INDEX_URL="$index"); fi
if [ "$base" = "$LOCAL_BASE" ] && [ -n "${PIP_CERT:-$(.venv/bin/pip config get global.cert 2>/dev/null || true)}" ]; then
  build_args+=(--build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
echo "building $PROJECT_IMAGE on $base"
docker build -q --force-rm --network host "${build_args[@]}" -t "$PROJECT_IMAGE" . >/dev/null

cat >"$ENV_FILE" <<ENV
# Written by compose/setup.sh: the images docker-compose.yml runs here.
ZK_IMAGE=$zk_image
# The project image's base, for docker compose build with this file.
BASE_IMAGE=$base
ENV
echo "compose images ready ($ENV_FILE)"
