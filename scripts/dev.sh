#!/usr/bin/env bash
# `npm start`: a development cluster on this machine to try the chat in a browser. It starts N
# nodes (default 3) with scripts/cluster.sh in insecure mode (logins by user id, which a node
# allows on loopback only), prints the pages' URLs, and stops the nodes on Ctrl-C. While it runs,
# `scripts/cluster.sh add`, `kill I`, `restart I` … change the same cluster (same IM_DATA).
# IM_INSECURE=0 npm start runs it with tokens instead (bin/im token <user> prints one).
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PATH=$ROOT/node_modules/.bin:$PATH
N=${1:-3}
export IM_INSECURE=${IM_INSECURE-1}
PORT=${IM_WS_PORT:-7001}
HOST=${IM_HOST:-127.0.0.1}
started=$(date +%s)

scripts/cluster.sh start "$N"

mode="secure mode: log in with a token (bin/im token <user>)"
if [[ $IM_INSECURE == 1 ]]; then mode="development mode: logins by user id without a password (IM_INSECURE=1), loopback only"; fi
cat <<INFO

  imring is running: $N nodes, ready in $(( $(date +%s) - started )) s ($mode).

    Chat     http://$HOST:$PORT/         open it in two tabs and log in as two users
    Cluster  http://$HOST:$PORT/admin    members, ring, traffic, live

  In another terminal: scripts/cluster.sh add (one more node), scripts/cluster.sh kill 2,
  scripts/cluster.sh status, bin/im listen --as bob. Ctrl-C here stops every node.

INFO

sleeper=
stop() {
  trap - INT TERM
  if [[ -n $sleeper ]]; then kill "$sleeper" 2>/dev/null || true; fi   # it holds our stdout open
  echo
  scripts/cluster.sh stop
  exit 0
}
trap stop INT TERM
# Stay in the foreground until Ctrl-C (sleep in the background, so the trap runs at once).
while :; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper" || true
done
