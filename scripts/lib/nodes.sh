# Shared by scripts/cluster.sh and scripts/netns-cluster.sh (sourced, not run): messages, node
# folders and pids, HTTP probes, and waiting for nodes to start and to see each other.
# The sourcing script sets SCRIPT (its name, for messages), DATA, TIMEOUT, and defines
# http_of I (node I's HTTP base URL).

die() { echo "$SCRIPT: $*" >&2; exit 1; }
bad_usage() { echo "$SCRIPT: $*" >&2; echo "run 'scripts/$SCRIPT help' for usage" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

dir_of() { echo "$DATA/node-$1"; }
pid_of() { local f; f="$(dir_of "$1")/pid"; if [[ -f $f ]]; then tr -dc 0-9 <"$f"; fi; }
names_of() { local i out=; for i in "$@"; do out+="${out:+,}node-$i"; done; echo "$out"; }

# alive PID: the process exists and is not a zombie (orphans may stay unreaped, e.g. in containers).
alive() {
  local pid=$1 stat
  if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then return 1; fi
  if [[ -r /proc/$pid/stat ]]; then
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]] || return 1
  fi
}

# Small HTTP probes (curl may be absent). health BASE NAME: "ok" when /healthz is 200 for node
# NAME; up BASE NAMES: "ok" when the node lists every one of NAMES (comma separated) as up;
# status BASE: "<healthz>\t<ring version>\t<members>".
PROBE_JS='
const [what, base, name] = process.argv.slice(1);
const get = async (path) => {
  try {
    const auth = process.env.IM_ADMIN_TOKEN ? { authorization: "Bearer " + process.env.IM_ADMIN_TOKEN } : {};
    const r = await fetch(base + path, { headers: auth, signal: AbortSignal.timeout(2000) });
    return { status: r.status, body: await r.json().catch(() => ({})) };
  } catch { return { status: 0, body: {} }; }
};
const h = await get("/healthz");
if (what === "health") console.log(h.status === 200 && h.body.node === name ? "ok" : h.status || "down");
else if (what === "up") {
  const c = h.status === 200 ? await get("/cluster") : { body: {} };
  const up = new Set((c.body.members ?? []).filter((m) => m.state === "up").map((m) => m.name));
  console.log(name.split(",").every((n) => up.has(n)) ? "ok" : [...up].join(",") || "none");
} else {
  const c = h.status ? await get("/cluster") : { body: {} };
  const health = h.status ? `${h.status} ${h.body.state ?? ""}`.trim() : "down";
  const members = (c.body.members ?? []).map((m) => `${m.name}:${m.state}`).join(",") || "-";
  console.log([health, c.body.ring?.version ?? "-", members].join("\t"));
}'
probe() { node --input-type=module -e "$PROBE_JS" "$@"; }

fail_with_log() {
  echo "$SCRIPT: $2; last lines of $(dir_of "$1")/log:" >&2
  tail -n 20 "$(dir_of "$1")/log" | sed 's/^/    /' >&2
  exit 1
}

# wait_healthy I: node I answers /healthz with 200 within TIMEOUT (and has not exited meanwhile).
wait_healthy() {
  local i=$1 pid end=$((SECONDS + TIMEOUT))
  pid=$(pid_of "$i")
  while :; do
    alive "$pid" || fail_with_log "$i" "node-$i (pid $pid) exited during startup"
    if [[ $(probe health "$(http_of "$i")" "node-$i") == ok ]]; then return 0; fi
    ((SECONDS < end)) || fail_with_log "$i" "node-$i did not answer /healthz with 200 within ${TIMEOUT}s"
    sleep 0.2
  done
}

# wait_members NAMES I...: every node I lists every one of NAMES (comma separated) as up.
wait_members() {
  local names=$1 i r end=$((SECONDS + TIMEOUT))
  shift
  for i in "$@"; do
    while :; do
      r=$(probe up "$(http_of "$i")" "$names")
      [[ $r == ok ]] && break
      ((SECONDS < end)) || fail_with_log "$i" "node-$i does not list all of $names as up within ${TIMEOUT}s (up: $r)"
      sleep 0.2
    done
  done
}
