#!/usr/bin/env bash
# Runs a local cluster of imring nodes from a checkout: start, status, add, leave, kill, restart, stop.
# Node I is named node-I, keeps its data, pid file and log under $IM_DATA/node-I, and listens on
# IM_WS_PORT+I-1 (clients, HTTP) and IM_P2P_PORT+I-1 (peers). `scripts/cluster.sh help` for usage.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_PWD=$PWD
cd "$ROOT"

usage() {
  cat <<'EOF'
usage: scripts/cluster.sh COMMAND [ARG]

commands:
  start [N]     start nodes 1..N (default 3), wait until each serves, print their client URLs
  status        each node: name, pid, alive/dead, URL, /healthz, ring version and members
  add           start the next node (one past the highest node-I folder)
  leave I       stop node I gracefully (SIGTERM); return once it has exited
  kill I        stop node I with SIGKILL
  restart I     start node I again on its old data folder and ports
  stop          stop every live node gracefully
  help          this text

environment:
  IM_DATA       base folder (default: data under the project root); node I uses $IM_DATA/node-I
  IM_WS_PORT    first client port (default 7001); node I uses IM_WS_PORT+I-1
  IM_P2P_PORT   first peer port (default 9001); node I uses IM_P2P_PORT+I-1
  IM_HOST       client listen address (default 127.0.0.1)
  IM_INSECURE   1 = accept logins without a token (development only)
  IM_ADMIN_TOKEN  when set, every node puts /cluster, /metrics and the /admin page's data
                behind it (the script's own probes send it)
  IM_SECRET     token secret shared by all nodes; when unset, one is generated once into
                $IM_DATA/secret (mode 600), which `im token` reads too
  IM_TIMEOUT    seconds to wait for a node to serve or to exit (default 30)

Node I is started as: node src/node/main.ts --name node-I --data $IM_DATA/node-I --port ... --p2p-port ...
(and, for I > 1, --join /ip4/127.0.0.1/tcp/<peer port of node 1>). Its log is $IM_DATA/node-I/log.
Nodes find each other through node 1 (start) or through every live node (add, restart), over
libp2p with the private network key $IM_DATA/swarm.key (generated once), and serve every user
from any node. start, add and restart return once the nodes list each other as up.
EOF
}

SCRIPT=cluster.sh
# shellcheck source=lib/nodes.sh
. "$ROOT/scripts/lib/nodes.sh"

DATA=${IM_DATA:-$ROOT/data}
if [[ $DATA != /* ]]; then DATA=$CALLER_PWD/$DATA; fi   # a relative IM_DATA means relative to the caller
WS_BASE=${IM_WS_PORT:-7001}
P2P_BASE=${IM_P2P_PORT:-9001}
HOST=${IM_HOST:-127.0.0.1}
TIMEOUT=${IM_TIMEOUT:-30}
for v in WS_BASE P2P_BASE TIMEOUT; do is_uint "${!v}" || bad_usage "$v must be a number, got '${!v}'"; done
DETACH=; if command -v setsid >/dev/null; then DETACH=setsid; fi   # own session: survives the script and Ctrl-C


# "HOST WS P2P" of node I: as recorded when it was last started, else from the environment.
addr_of() {
  local f; f="$(dir_of "$1")/addr"
  if [[ $2 == recorded && -s $f ]]; then cat "$f"; else echo "$HOST $((WS_BASE + $1 - 1)) $((P2P_BASE + $1 - 1))"; fi
}
url_host() { case $1 in 0.0.0.0 | ::) echo 127.0.0.1 ;; *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }
url_of() { local h w p; read -r h w p < <(addr_of "$1" recorded); echo "ws://$(url_host "$h"):$w/ws"; }
http_of() { local h w p; read -r h w p < <(addr_of "$1" recorded); echo "http://$(url_host "$h"):$w"; }

# running I: node I's recorded pid is alive and really is that node (not a reused pid).
running() {
  local pid cmd; pid=$(pid_of "$1")
  alive "$pid" || return 1
  if [[ -r /proc/$pid/cmdline ]]; then cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  else cmd=$(ps -o args= -p "$pid" 2>/dev/null || true); fi
  [[ -z $cmd || $cmd == *"--data $(dir_of "$1") "* ]]
}
# Node indices that have a folder under $DATA, ascending.
indices() {
  local d n
  for d in "$DATA"/node-*/; do
    n=${d%/}; n=${n##*/node-}
    if is_uint "$n"; then echo "$n"; fi
  done | sort -n
}
parse_index() { # parse_index ARGS...: exactly one node index
  if [[ $# -ne 1 ]] || ! is_uint "$1" || (($1 < 1)); then bad_usage "$CMD needs one node index I >= 1"; fi
  echo "$1"
}

need_node() {
  [[ -x $ROOT/node_modules/.bin/node ]] || die "$ROOT/node_modules/.bin/node is missing: run npm install first"
  export PATH="$ROOT/node_modules/.bin:$PATH"
}

ensure_secret() {
  if [[ -n ${IM_SECRET:-} ]]; then export IM_SECRET; return; fi
  local f=$DATA/secret
  mkdir -p "$DATA"
  if [[ ! -s $f ]]; then
    (umask 077 && node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))' >"$f.$$")
    chmod 600 "$f.$$" && mv "$f.$$" "$f"
    echo "generated a token secret into $f"
  fi
  IM_SECRET=$(tr -d '[:space:]' <"$f")
  export IM_SECRET
}

# The private network key every node of this cluster shares (libp2p pnet), generated once.
ensure_psk() {
  PSK=$DATA/swarm.key
  if [[ ! -s $PSK ]]; then
    mkdir -p "$DATA"
    (umask 077 && node -e 'process.stdout.write("/key/swarm/psk/1.0.0/\n/base16/\n" + require("node:crypto").randomBytes(32).toString("hex"))' >"$PSK.$$")
    chmod 600 "$PSK.$$" && mv "$PSK.$$" "$PSK"
    echo "generated the cluster's private network key into $PSK"
  fi
}

# start_node I recorded|env SEED...: launch node I detached, logging to its folder; it joins
# the cluster through the given seed nodes (none: it starts a new cluster).
start_node() {
  local i=$1 mode=$2 dir h w p seed sp args
  shift 2
  dir=$(dir_of "$i")
  read -r h w p < <(addr_of "$i" "$mode")
  ((w + 0 <= 65535 && p + 0 <= 65535)) || die "node-$i: port out of range ($w, $p)"
  mkdir -p "$dir"
  echo "$h $w $p" >"$dir/addr"
  args=(src/node/main.ts --name "node-$i" --data "$dir" --host "$h" --port "$w" --p2p-port "$p" --psk-file "$PSK")
  for seed in "$@"; do
    read -r _ _ sp < <(addr_of "$seed" recorded)
    args+=(--join "/ip4/127.0.0.1/tcp/$sp")
  done
  if [[ ${IM_INSECURE:-} == 1 ]]; then args+=(--insecure); fi
  echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh: starting node-$i" >>"$dir/log"
  $DETACH nohup node "${args[@]}" >>"$dir/log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

live_indices() { local i; for i in $(indices); do if running "$i"; then echo "$i"; fi; done; }

wait_exit() { # wait_exit PID: 1 on timeout
  local end=$((SECONDS + TIMEOUT))
  while alive "$1"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

cmd_start() {
  local n=${1:-3} i busy=
  if [[ $# -gt 1 ]] || ! is_uint "$n" || ((n < 1)); then bad_usage "start takes an optional node count N >= 1"; fi
  for ((i = 1; i <= n; i++)); do
    if running "$i"; then busy+=" node-$i (pid $(pid_of "$i"))"; fi
  done
  [[ -z $busy ]] || die "already running:$busy; use stop, or restart I"
  ensure_secret
  ensure_psk
  start_node 1 env
  for ((i = 2; i <= n; i++)); do start_node "$i" env 1; done
  for ((i = 1; i <= n; i++)); do wait_healthy "$i"; done
  local all; all=$(seq 1 "$n")
  # shellcheck disable=SC2086
  wait_members "$(names_of $all)" $all
  for ((i = 1; i <= n; i++)); do echo "node-$i $(url_of "$i")"; done
}

cmd_status() {
  local i pid state health ring members found=
  printf '%-8s %-8s %-6s %-26s %-12s %-16s %s\n' NAME PID STATE URL HEALTHZ RING MEMBERS
  for i in $(indices); do
    found=1
    pid=$(pid_of "$i")
    health=- ring=- members=- state=dead
    if running "$i"; then
      state=alive
      IFS=$'\t' read -r health ring members < <(probe status "$(http_of "$i")")
    fi
    printf '%-8s %-8s %-6s %-26s %-12s %-16s %s\n' "node-$i" "${pid:--}" "$state" "$(url_of "$i")" "$health" "$ring" "$members"
  done
  [[ -n $found ]] || echo "(no nodes under $DATA)"
}

cmd_add() {
  [[ $# -eq 0 ]] || bad_usage "add takes no arguments"
  local i; i=$(indices | tail -n 1)
  i=$((${i:-0} + 1))
  ensure_secret
  ensure_psk
  local live; live=$(live_indices)
  # shellcheck disable=SC2086
  start_node "$i" env $live
  wait_healthy "$i"
  # shellcheck disable=SC2086
  wait_members "node-$i" $live "$i"
  echo "node-$i $(url_of "$i")"
}

cmd_signal() { # cmd_signal TERM|KILL I
  local i=$2 pid
  running "$i" || die "node-$i is not running"
  pid=$(pid_of "$i")
  kill "-$1" "$pid"
  wait_exit "$pid" || die "node-$i (pid $pid) has not exited within ${TIMEOUT}s"
  if [[ $1 == TERM ]]; then echo "node-$i left"; else echo "node-$i killed"; fi
}

cmd_restart() {
  local i=$1
  [[ -d $(dir_of "$i") ]] || die "there is no node-$i under $DATA"
  if running "$i"; then die "node-$i is already running (pid $(pid_of "$i"))"; fi
  ensure_secret
  ensure_psk
  local live; live=$(live_indices)
  # shellcheck disable=SC2086
  start_node "$i" recorded $live
  wait_healthy "$i"
  # shellcheck disable=SC2086
  wait_members "node-$i" $live "$i"
  echo "node-$i $(url_of "$i")"
}

cmd_stop() {
  [[ $# -eq 0 ]] || bad_usage "stop takes no arguments"
  local i pids=() names=() k failed=
  for i in $(indices); do
    if running "$i"; then
      pids+=("$(pid_of "$i")") names+=("node-$i")
      kill -TERM "${pids[${#pids[@]} - 1]}"
    fi
  done
  if [[ ${#pids[@]} -eq 0 ]]; then echo "no live nodes under $DATA"; return 0; fi
  for k in "${!pids[@]}"; do
    if wait_exit "${pids[$k]}"; then echo "stopped ${names[$k]}"
    else echo "cluster.sh: ${names[$k]} (pid ${pids[$k]}) has not exited within ${TIMEOUT}s" >&2; failed=1; fi
  done
  [[ -z $failed ]] || exit 1
}

CMD=${1:-help}
[[ $# -eq 0 ]] || shift
case $CMD in
  help | -h | --help) usage; exit 0 ;;
  start | status | add | leave | kill | restart | stop) need_node ;;
  *) bad_usage "unknown command '$CMD'" ;;
esac
case $CMD in
  start) cmd_start "$@" ;;
  status) [[ $# -eq 0 ]] || bad_usage "status takes no arguments"; cmd_status ;;
  add) cmd_add "$@" ;;
  leave) i=$(parse_index "$@") || exit $?; cmd_signal TERM "$i" ;;
  kill) i=$(parse_index "$@") || exit $?; cmd_signal KILL "$i" ;;
  restart) i=$(parse_index "$@") || exit $?; cmd_restart "$i" ;;
  stop) cmd_stop "$@" ;;
esac
