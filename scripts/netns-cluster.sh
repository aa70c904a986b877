#!/usr/bin/env bash
# Runs a cluster of imring nodes on "separate hosts": each node in its own Linux network namespace
# with its own addresses, the same topology as test/helpers/netns.ts, and cuts links to see what a
# partition does. Needs root and iproute2. `scripts/netns-cluster.sh help` for usage.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_PWD=$PWD
cd "$ROOT"

usage() {
  cat <<'EOF'
usage: scripts/netns-cluster.sh COMMAND [ARG]

commands:
  up N          create the namespaces and links, start nodes 1..N (secure mode), wait until every
                node lists every node up, print each node's client URL and the data folder
  isolate I     take node I's peer link down (its client link stays up)
  heal I        bring node I's peer link up again
  split         take the trunk between side A and side B down
  join          bring the trunk up again
  status        links (up/down) and each node: pid, alive/dead, URL, /healthz, ring, members
  down          kill the nodes, delete the namespaces and links (data and logs are kept)
  help          this text

environment:
  IM_DATA       folder for node data and logs (default: data/netns under the project root);
                node I uses $IM_DATA/node-I (log: $IM_DATA/node-I/log); `up` empties it first
  IM_SIDE_A     nodes on side A, comma separated (default: the first half, e.g. 1,2 of 5)
  IM_SECRET     token secret; else generated once into $IM_DATA/secret (`im token` reads it)
  IM_NODE_ARGS  more flags for every node, e.g. "--suspect-after 1000"
  IM_TIMEOUT    seconds to wait for a node to serve or to exit (default 30)

Topology (namespaces imnet-0-*; the tests use imnet-1-* and up, so both can run at once):
  imnet-0-sw        the switch: bridges brA and brB joined by the veth trunk trA=trB; node I's
                    peer link is its port pI, on brA (side A) or brB (side B)
  imnet-0-nI        node I: peer0 10.77.0.I/24 (peer network), cli0 10.78.0.<4I-2>/30 (client
                    network: a veth to imb0nI, 10.78.0.<4I-3>, in this machine's namespace)
Node I runs: ip netns exec imnet-0-nI node src/node/main.ts --name node-I --host 10.78.0.<4I-2>
  --port 7001 --p2p-host 10.77.0.I --p2p-port 9001 --announce 10.77.0.I
  --public-url ws://10.78.0.<4I-2>:7001/ws --psk-file $IM_DATA/swarm.key [--join /ip4/10.77.0.1/tcp/9001]
From this machine every node's client URL is reachable whatever the faults; peers reach each
other only over the peer network, which isolate and split cut.
EOF
}

SCRIPT=netns-cluster.sh
# shellcheck source=lib/nodes.sh
. "$ROOT/scripts/lib/nodes.sh"

DATA=${IM_DATA:-$ROOT/data/netns}
if [[ $DATA != /* ]]; then DATA=$CALLER_PWD/$DATA; fi
TIMEOUT=${IM_TIMEOUT:-30}
is_uint "$TIMEOUT" || bad_usage "IM_TIMEOUT must be a number, got '$TIMEOUT'"
PREFIX=imnet-0-
SW=${PREFIX}sw
WS_PORT=7001
P2P_PORT=9001
DETACH=; if command -v setsid >/dev/null; then DETACH=setsid; fi   # own session: survives the script and Ctrl-C

client_ip() { echo "10.78.0.$((4 * $1 - 2))"; }
http_of() { echo "http://$(client_ip "$1"):$WS_PORT"; }
url_of() { echo "ws://$(client_ip "$1"):$WS_PORT/ws"; }
# Node indices that have a folder under $DATA, ascending.
indices() {
  local d n
  for d in "$DATA"/node-*/; do
    n=${d%/}; n=${n##*/node-}
    if is_uint "$n"; then echo "$n"; fi
  done | sort -n
}
namespaces() { ip netns list | awk '{print $1}' | grep "^$PREFIX" || true; }
node_count() { namespaces | grep -c "^${PREFIX}n" || true; }
parse_index() {
  if [[ $# -ne 1 ]] || ! is_uint "$1" || (($1 < 1)); then bad_usage "$CMD needs one node index I >= 1"; fi
  ip netns list | grep -q "^${PREFIX}n$1\b" || die "there is no node $1 (is the cluster up?)"
  echo "$1"
}

need_tools() {
  ((EUID == 0)) || die "needs root (network namespaces)"
  command -v ip >/dev/null || die "needs iproute2's ip (apt-get install iproute2)"
  [[ -x $ROOT/node_modules/.bin/node ]] || die "$ROOT/node_modules/.bin/node is missing: run npm install first"
  export PATH="$ROOT/node_modules/.bin:$PATH"
}


ensure_keys() {
  mkdir -p "$DATA"
  if [[ -n ${IM_SECRET:-} ]]; then export IM_SECRET; else
    if [[ ! -s $DATA/secret ]]; then
      (umask 077 && node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))' >"$DATA/secret")
    fi
    IM_SECRET=$(tr -d '[:space:]' <"$DATA/secret"); export IM_SECRET
  fi
  PSK=$DATA/swarm.key
  if [[ ! -s $PSK ]]; then
    (umask 077 && node -e 'process.stdout.write("/key/swarm/psk/1.0.0/\n/base16/\n" + require("node:crypto").randomBytes(32).toString("hex"))' >"$PSK")
  fi
}

build() { # build N SIDE_A(comma separated)
  local n=$1 side_a=",$2," i ns side
  ip netns add "$SW"
  ip -n "$SW" link set lo up
  for br in brA brB; do ip -n "$SW" link add name "$br" type bridge; ip -n "$SW" link set "$br" up; done
  ip -n "$SW" link add name trA type veth peer name trB
  ip -n "$SW" link set trA master brA; ip -n "$SW" link set trB master brB
  ip -n "$SW" link set trA up; ip -n "$SW" link set trB up
  for ((i = 1; i <= n; i++)); do
    ns=${PREFIX}n$i
    side=B; [[ $side_a == *",$i,"* ]] && side=A
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$SW" link add name "p$i" type veth peer name peer0 netns "$ns"
    ip -n "$SW" link set "p$i" master "br$side"
    ip -n "$SW" link set "p$i" up
    ip -n "$ns" addr add "10.77.0.$i/24" dev peer0
    ip -n "$ns" link set peer0 up
    ip link add name "imb0n$i" type veth peer name cli0 netns "$ns"
    ip addr add "10.78.0.$((4 * i - 3))/30" dev "imb0n$i"
    ip link set "imb0n$i" up
    ip -n "$ns" addr add "$(client_ip "$i")/30" dev cli0
    ip -n "$ns" link set cli0 up
  done
}

start_node() { # start_node I [SEED...]
  local i=$1 dir seed args
  shift
  dir=$(dir_of "$i")
  mkdir -p "$dir"
  args=(src/node/main.ts --name "node-$i" --data "$dir" --host "$(client_ip "$i")" --port "$WS_PORT"
    --public-url "$(url_of "$i")" --p2p-host "10.77.0.$i" --p2p-port "$P2P_PORT" --announce "10.77.0.$i" --psk-file "$PSK")
  for seed in "$@"; do args+=(--join "/ip4/10.77.0.$seed/tcp/$P2P_PORT"); done
  # shellcheck disable=SC2206
  args+=(${IM_NODE_ARGS:-})
  echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) netns-cluster.sh: starting node-$i" >>"$dir/log"
  # `ip netns exec` execs node in place: $! is the node's pid.
  $DETACH nohup ip netns exec "${PREFIX}n$i" node "${args[@]}" >>"$dir/log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}


cmd_up() {
  [[ $# -eq 1 ]] && is_uint "$1" && (($1 >= 1 && $1 <= 60)) || bad_usage "up takes a node count N from 1 to 60"
  local n=$1 i side_a=${IM_SIDE_A:-}
  [[ -z $(namespaces) ]] || die "already up (namespaces ${PREFIX}*): run down first"
  if [[ -z $side_a ]]; then for ((i = 1; i <= n / 2; i++)); do side_a+="${side_a:+,}$i"; done; fi
  [[ $side_a =~ ^[0-9,]*$ ]] || bad_usage "IM_SIDE_A must be node numbers separated by commas, got '$side_a'"
  for i in $(indices); do rm -rf "$(dir_of "$i")"; done
  ensure_keys
  trap 'echo "netns-cluster.sh: up failed; removing what it made" >&2; cmd_down >/dev/null 2>&1 || true' EXIT
  build "$n" "$side_a"
  start_node 1
  wait_healthy 1
  for ((i = 2; i <= n; i++)); do start_node "$i" 1; done
  for ((i = 2; i <= n; i++)); do wait_healthy "$i"; done
  wait_members "$(names_of $(seq 1 "$n"))" $(seq 1 "$n")
  trap - EXIT
  for ((i = 1; i <= n; i++)); do echo "node-$i $(url_of "$i")  peer 10.77.0.$i  side $([[ ",$side_a," == *",$i,"* ]] && echo A || echo B)"; done
  echo "data and logs: $DATA (node I: $DATA/node-I/log)"
}

link() { # link NAME up|down
  ip -n "$SW" link set "$1" "$2" || die "no link $1 (is the cluster up?)"
  echo "$(date -u +%H:%M:%S.%3N) $1 $2"
}

link_state() { ip -n "$SW" -o link show "$1" | grep -q '[<,]UP[,>]' && echo up || echo down; }

cmd_status() {
  local i pid state health ring members
  [[ -n $(namespaces) ]] || { echo "down (no namespaces ${PREFIX}*)"; return 0; }
  local links="trunk:$(link_state trA)"
  for ((i = 1; i <= $(node_count); i++)); do
    links+=" p$i($(ip -n "$SW" -o link show "p$i" | grep -q 'master brA' && echo A || echo B)):$(link_state "p$i")"
  done
  echo "links: $links"
  printf '%-8s %-8s %-6s %-26s %-12s %-16s %s\n' NAME PID STATE URL HEALTHZ RING MEMBERS
  for ((i = 1; i <= $(node_count); i++)); do
    pid=$(pid_of "$i") health=- ring=- members=- state=dead
    if alive "$pid"; then
      state=alive
      IFS=$'\t' read -r health ring members < <(probe status "$(http_of "$i")")
    fi
    printf '%-8s %-8s %-6s %-26s %-12s %-16s %s\n' "node-$i" "${pid:--}" "$state" "$(url_of "$i")" "$health" "$ring" "$members"
  done
}

cmd_down() {
  local i pid pids=() ns l end=$((SECONDS + TIMEOUT))
  # What runs in the namespaces (the nodes, and anything an operator started there).
  for ns in $(namespaces); do pids+=($(ip netns pids "$ns")); done
  for i in $(indices); do pid=$(pid_of "$i"); if alive "$pid"; then pids+=("$pid"); fi; rm -f "$(dir_of "$i")/pid"; done
  if ((${#pids[@]})); then mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -un); kill -KILL "${pids[@]}" 2>/dev/null || true; fi
  # Wait for them to be gone while the links exist: a socket whose links vanish first keeps
  # retrying its FIN, and with it the namespace and its veth, for minutes.
  for pid in "${pids[@]}"; do while alive "$pid" && ((SECONDS < end)); do sleep 0.1; done; done
  for l in $(ip -o link show | sed -n 's/^[0-9]*: \(imb0n[0-9]*\)[@:].*/\1/p'); do ip link del "$l"; done
  for ns in $(namespaces | grep -v -- '-sw$') $(namespaces | grep -- '-sw$'); do ip netns del "$ns"; done
  echo "down: ${#pids[@]} processes killed, namespaces ${PREFIX}* removed; data and logs kept in $DATA"
}

CMD=${1:-help}
[[ $# -eq 0 ]] || shift
case $CMD in
  help | -h | --help) usage; exit 0 ;;
  up | isolate | heal | split | join | status | down) need_tools ;;
  *) bad_usage "unknown command '$CMD'" ;;
esac
case $CMD in
  up) cmd_up "$@" ;;
  isolate) i=$(parse_index "$@") || exit $?; link "p$i" down ;;
  heal) i=$(parse_index "$@") || exit $?; link "p$i" up ;;
  split) [[ $# -eq 0 ]] || bad_usage "split takes no arguments"; link trA down; link trB down ;;
  join) [[ $# -eq 0 ]] || bad_usage "join takes no arguments"; link trA up; link trB up ;;
  status) [[ $# -eq 0 ]] || bad_usage "status takes no arguments"; cmd_status ;;
  down) [[ $# -eq 0 ]] || bad_usage "down takes no arguments"; cmd_down ;;
esac
