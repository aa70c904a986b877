// The churn benchmark's report (bench/churn.ts prints it): the timelines read back checked with
// the churn tests' checker (test/helpers/invariants.ts) and sorted into counts and loss groups,
// each phase's rates, latencies, stalls and CPU, the ratios to the steady phase, and the warnings
// in the nodes' logs.
import type { Entry } from '../src/protocol/frames.ts';
// Without ava: invariants.ts imports only the protocol's types.
import { findViolations } from '../test/helpers/invariants.ts';
import type { Confirmed } from '../test/helpers/invariants.ts';
import { latencySummary, now, round1 } from './churn-common.ts';
import type { Phase } from './churn-common.ts';
import type { Bench } from './churn-bench.ts';
import type { User } from './churn-user.ts';
import { stepLines, stepWork } from './churn-steps.ts';
import type { StepRow } from './churn-steps.ts';

const OTHER_CORES_WARN = 0.2;

type Loss = { cid: string; missing_at: string; from: string; to: string; confirmed: string; phase: string; step: string; gateway: string; owners: string };
/** Lost messages grouped by where they are missing, the phase and the step they were confirmed in. */
type LossGroup = { missing_at: string; phase: string; step: string; count: number; users: string[]; first: string; last: string };
export type Verification = {
  timelines: number; entries: number; confirmed: number; unconfirmed_end: number;
  lost_recipient: number; lost_sender: number; duplicated: number; reordered: number; seq_mismatch: number;
  seq_gaps: number; mid_repeats: number; loss_groups: LossGroup[]; losses: Loss[]; problems: string[];
};

/** A confirmed send, as the shared checker takes it, with when and through which node it was confirmed. */
type BenchSend = Confirmed & { at: number; node: string };

/**
 * Checks the timelines read back against the confirmed sends with the checker the churn tests
 * use (test/helpers/invariants.ts), and sorts what it finds into this report's counts; losses
 * are also grouped by where they are missing, phase and step, with the first few in detail.
 * A send's order on its connection is known when its 'sent' was not a dup (`storedBy`).
 */
export function check(b: Bench, timelines: Map<User, Entry[]>): Verification {
  const v: Verification = {
    timelines: timelines.size, entries: 0, confirmed: 0, unconfirmed_end: 0, lost_recipient: 0, lost_sender: 0,
    duplicated: 0, reordered: 0, seq_mismatch: 0, seq_gaps: 0, mid_repeats: 0, loss_groups: [], losses: [], problems: [],
  };
  const groups = new Map<string, LossGroup>();
  const problem = (s: string) => {
    if (v.problems.length < 20) v.problems.push(s);
  };
  const phaseAt = (at: number) => [...b.phases].reverse().find((p) => p.start <= at)?.name ?? '?';
  const byName = new Map<string, Entry[]>();
  const sends: BenchSend[] = [];
  for (const [u, tl] of timelines) {
    byName.set(u.name, tl);
    v.entries += tl.length;
    v.confirmed += u.confirmed.size;
    v.unconfirmed_end += u.out.size;
    for (const [k, c] of u.confirmed) {
      const by = u.storedBy.get(k);
      sends.push({
        from: u.name, to: u.partner.name, mid: c.mid, seq: c.seq, cid: `${u.name}-${k}`,
        ...(by ? { conn: by[0], idx: by[1] } : {}), at: c.at, node: c.node,
      });
    }
  }
  const lose = (m: BenchSend, where: string) => {
    const phase = phaseAt(m.at);
    const step = b.stepAt(m.at);
    const key = `${where} ${phase} ${step}`;
    const g = groups.get(key) ?? { missing_at: where, phase, step, count: 0, users: [], first: b.t(m.at), last: '' };
    groups.set(key, g);
    g.count++;
    g.last = b.t(m.at);
    if (!g.users.includes(m.from)) g.users.push(m.from);
    if (v.losses.length >= 10) return;
    v.losses.push({
      cid: m.cid, missing_at: where, from: m.from, to: m.to, confirmed: b.t(m.at), phase,
      step, gateway: m.node, owners: b.owners(m.at, m.from, m.to),
    });
  };
  // A message's body starts with its sender's counter: `<sender>-<counter>` is its cid.
  const cidOf = (e: Entry) => `${e.from}-${e.body.slice(0, e.body.indexOf(' '))}`;
  for (const x of findViolations(byName, sends, { cidOf })) {
    switch (x.kind) {
      case 'lost':
        if (x.role === 'sender') v.lost_sender++;
        else v.lost_recipient++;
        lose(x.send!, x.role!);
        continue;
      case 'mismatch':
        v.seq_mismatch++;
        break;
      case 'duplicate':
        v.duplicated += x.count;
        break;
      case 'reordered':
      case 'group_order': // no groups here
        v.reordered++;
        break;
      case 'gaps':
        v.seq_gaps++;
        break;
      case 'mid_twice':
        v.mid_repeats += x.count;
        break;
    }
    problem(x.text);
  }
  v.loss_groups = [...groups.values()];
  return v;
}

// ---- report ----

function phaseResult(p: Phase) {
  const s = ((p.end ?? now()) - p.start) / 1000;
  const stalled = [...p.stallByUser.values()].filter((ms) => ms > 1000).length;
  return {
    seconds: round1(s),
    confirmed: p.confirmed,
    confirmed_per_s: Math.round(p.confirmed / s),
    delivered: p.delivered,
    delivered_per_s: Math.round(p.delivered / s),
    sent_latency_ms: latencySummary(p.latencies),
    longest_stall_ms: Math.round(p.stall.ms),
    longest_stall_user: p.stall.user || null,
    users_stalled_over_1s: stalled,
    unavailable: p.unavailable,
    errors: p.errors,
    reconnects: p.reconnects,
    connect_failures: p.connectFailures,
    goaways: p.goaways,
    /** Cores kept busy on average by our nodes, by the load generator and by any other process. */
    cores_nodes: Math.round((p.cpuNodes / s) * 100) / 100,
    cores_bench: Math.round((p.cpuBench / s) * 100) / 100,
    cores_other: Math.max(0, Math.round(((p.cpuAll - p.cpuNodes - p.cpuBench) / s) * 100) / 100),
    /** Node CPU per confirmed send, in ms. */
    node_cpu_ms_per_confirmed: p.confirmed ? Math.round((p.cpuNodes / p.confirmed) * 1e5) / 100 : null,
    handoff_entries: p.handoffEntries,
    replicated_entries: p.replicatedEntries,
    cpu_nodes_s: round1(p.cpuNodes),
  };
}
type PhaseResult = ReturnType<typeof phaseResult>;

function table(results: Record<string, PhaseResult>, ratios: Record<string, Record<string, number | null>>): string[] {
  const names = Object.keys(results);
  const cols = [...names, ...Object.keys(ratios)];
  const lat = (r: PhaseResult, k: 'p50' | 'p99' | 'max') => (r.sent_latency_ms ? String(r.sent_latency_ms[k]) : 'n/a');
  const rows: [string, (r: PhaseResult) => string, string | undefined][] = [
    ['seconds', (r) => r.seconds.toFixed(1), undefined],
    ['confirmed sends/s', (r) => String(r.confirmed_per_s), 'confirmed_per_s'],
    ['delivered msgs/s', (r) => String(r.delivered_per_s), 'delivered_per_s'],
    ['send→sent p50 ms', (r) => lat(r, 'p50'), 'p50'],
    ['send→sent p99 ms', (r) => lat(r, 'p99'), 'p99'],
    ['send→sent max ms', (r) => lat(r, 'max'), 'max'],
    ['longest stall ms', (r) => String(r.longest_stall_ms), 'longest_stall'],
    ['users stalled > 1 s', (r) => String(r.users_stalled_over_1s), undefined],
    ['unavailable errors', (r) => String(r.unavailable), undefined],
    ['other errors', (r) => Object.entries(r.errors).map(([k, n]) => `${k}:${n}`).join(',') || '0', undefined],
    ['reconnects', (r) => String(r.reconnects), undefined],
    ['failed connects', (r) => String(r.connect_failures), undefined],
    ['goaways', (r) => String(r.goaways), undefined],
    ['cores busy: nodes', (r) => r.cores_nodes.toFixed(2), undefined],
    ['cores busy: bench', (r) => r.cores_bench.toFixed(2), undefined],
    ['cores busy: other', (r) => r.cores_other.toFixed(2), undefined],
    ['node CPU ms / confirmed', (r) => (r.node_cpu_ms_per_confirmed ?? 0).toFixed(2), undefined],
    ['entries handed off', (r) => String(r.handoff_entries), undefined],
    ['entries replicated', (r) => String(r.replicated_entries), undefined],
  ];
  const cells = rows.map(([label, f, key]) => [label, ...names.map((n) => f(results[n]!)),
    ...Object.values(ratios).map((q) => (key && q[key] != null ? q[key]!.toFixed(2) : ''))]);
  const header = ['', ...cols];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  return [header, ...cells].map((r) => '  ' + r.map((x, i) => (i ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  '));
}

/**
 * Where the churn phase's node CPU went, against steady state: the sends confirmed in it, at the
 * steady CPU per send (live replication included, at the steady entries per send), and the rest,
 * the extra work of churn; and the entries churn moved: handed off, plus replicated beyond the
 * steady entries per send (the backfill of new replicas). The cost per moved entry is the extra CPU
 * divided by those entries (it also carries reconnects, resends and failover, so it is an upper bound).
 */
export function churnWork(churn: PhaseResult | undefined, steady: PhaseResult | undefined) {
  if (!churn || !steady || !steady.confirmed || !churn.seconds) return null;
  const perSend = steady.cpu_nodes_s / steady.confirmed;
  const sendsCpu = churn.confirmed * perSend;
  const extraCpu = churn.cpu_nodes_s - sendsCpu;
  const backfill = Math.max(0, churn.replicated_entries - churn.confirmed * (steady.replicated_entries / steady.confirmed));
  const moved = churn.handoff_entries + backfill;
  return {
    sends_cpu_s: round1(sendsCpu), extra_cpu_s: round1(extraCpu),
    extra_share: churn.cpu_nodes_s ? Math.round((extraCpu / churn.cpu_nodes_s) * 100) / 100 : null,
    handoff_entries: churn.handoff_entries, backfill_entries: Math.round(backfill), moved_entries: Math.round(moved),
    us_per_moved_entry: moved ? Math.round((extraCpu / moved) * 1e6) : null,
  };
}

function ratio(a: PhaseResult | undefined, s: PhaseResult | undefined): Record<string, number | null> {
  const q = (x: number | undefined, y: number | undefined) => (x !== undefined && y ? Math.round((x / y) * 100) / 100 : null);
  return {
    confirmed_per_s: q(a?.confirmed_per_s, s?.confirmed_per_s), delivered_per_s: q(a?.delivered_per_s, s?.delivered_per_s),
    p50: q(a?.sent_latency_ms?.p50, s?.sent_latency_ms?.p50), p99: q(a?.sent_latency_ms?.p99, s?.sent_latency_ms?.p99),
    max: q(a?.sent_latency_ms?.max, s?.sent_latency_ms?.max), longest_stall: q(a?.longest_stall_ms, s?.longest_stall_ms),
  };
}

type LogProblem = { phase: string; msg: string; count: number; nodes: string[]; first: string };

/** Warnings and errors (pino level >= 40, and anything on stderr) in the nodes' logs, by phase and message. */
function nodeProblems(b: Bench): LogProblem[] {
  const byKey = new Map<string, LogProblem>();
  for (const n of b.cluster?.nodes ?? []) {
    for (const line of n.log) {
      let j: { level?: number; time?: number; msg?: string; err?: unknown } | undefined;
      try {
        j = JSON.parse(line) as typeof j;
      } catch {
        j = undefined;
      }
      if (j && (j.level ?? 0) < 40) continue;
      const at = j?.time;
      const phase = at === undefined ? 'stderr' : ([...b.phases].reverse().find((p) => p.start <= at)?.name ?? 'startup');
      const msg = (j ? `${j.msg ?? ''}${j.err ? ` (${JSON.stringify(j.err).slice(0, 200)})` : ''}` : line.trim()).slice(0, 300);
      const key = `${phase}\n${j?.msg ?? msg}`;
      const p = byKey.get(key) ?? { phase, msg, count: 0, nodes: [], first: at === undefined ? '' : b.t(at) };
      byKey.set(key, p);
      p.count++;
      if (!p.nodes.includes(n.opts.name!)) p.nodes.push(n.opts.name!);
    }
  }
  return [...byKey.values()];
}

/** The churn phase step by step (bench/churn-steps.ts); empty when a step or phase lacks totals. */
function churnSteps(b: Bench): StepRow[] {
  const steady = b.phases.find((p) => p.name === 'steady');
  const churn = b.phases.find((p) => p.name === 'churn');
  const marks = b.steps.flatMap((s) => (s.totals ? [{ step: `${s.step} ${s.node}`, totals: s.totals }] : []));
  if (!steady?.totalsStart || !steady.totalsEnd || !churn?.totalsEnd || !marks.length) return [];
  // The churn phase begins before its first step: that moment goes with the first step.
  marks[0] = { ...marks[0]!, totals: churn.totalsStart ?? marks[0]!.totals };
  return stepWork([steady.totalsStart, steady.totalsEnd], marks, churn.totalsEnd);
}

export function report(b: Bench, v: Verification | undefined, command: string, machine: string) {
  const o = b.o;
  const results: Record<string, PhaseResult> = {};
  for (const p of b.phases) if (p.name !== 'warmup' && p.name !== 'drain') results[p.name] = phaseResult(p);
  const ratios: Record<string, Record<string, number | null>> = { 'churn/steady': ratio(results.churn, results.steady) };
  if (results.recovery) ratios['recovery/steady'] = ratio(results.recovery, results.steady);
  const problems = nodeProblems(b);
  const failedSends = b.users.reduce((s, u) => s + u.failed, 0);
  const bad = v ? v.lost_recipient + v.lost_sender + v.duplicated + v.reordered + v.seq_mismatch + v.seq_gaps + v.mid_repeats : 0;
  const steady = b.phases.find((p) => p.name === 'steady')!;
  const result = {
    command, machine, node: process.version, ok: v !== undefined && bad === 0 && b.failures.length === 0,
    nodes: o.nodes, users: o.users, window: o.window, body: o.body, replicas: o.replicas,
    seconds: o.seconds, recovery: o.recovery, schedule: o.schedule, settle: o.settle,
    steps: b.steps.map(({ totals: _t, ...s }) => ({ ...s, at: round1((s.at - steady.start) / 1000) })),
    phases: results, ratios, churn_work: churnWork(results.churn, results.steady), churn_steps: churnSteps(b),
    confirmed_per_second: Array.from(b.perSecond, (x) => x ?? 0),
    verification: v ?? null, failed_sends: failedSends,
    anomalies: b.anomalies.map((a) => `${b.t(a.at)} ${a.text}`),
    node_warnings: problems, failures: b.failures, dir: b.dir,
  };

  const lines = ['', ...table(results, ratios)];
  const bounds = b.phases.filter((p) => p.name !== 'warmup').map((p) => `${p.name} at ${Math.round((p.start - steady.start) / 1000)} s`);
  const w = result.churn_work;
  if (w) {
    lines.push(`\n  churn work: node CPU ${results.churn!.cpu_nodes_s} s in the churn phase = ${w.sends_cpu_s} s for its sends at the steady cost + ${w.extra_cpu_s} s more (${Math.round((w.extra_share ?? 0) * 100)} %);`,
      `  entries moved: ${w.handoff_entries} handed off + ${w.backfill_entries} backfilled = ${w.moved_entries}; ${w.us_per_moved_entry ?? 'n/a'} µs of the extra CPU per moved entry`);
  }
  lines.push(...stepLines(result.churn_steps));
  lines.push(`\n  confirmed per second from the start of the steady phase (${bounds.join(', ')}):`, `  ${result.confirmed_per_second.join(' ')}`);
  if (v) {
    lines.push(
      `\n  verification: ${v.timelines} timelines, ${v.entries} entries; ${v.confirmed} confirmed sends (${v.unconfirmed_end} unconfirmed at the end, ${failedSends} failed)`,
      `  lost at the recipient ${v.lost_recipient}, lost at the sender ${v.lost_sender}, duplicated ${v.duplicated}, reordered ${v.reordered}, ` +
        `seq mismatch ${v.seq_mismatch}, timelines with seq gaps ${v.seq_gaps}, repeated mids ${v.mid_repeats}`,
    );
    for (const g of v.loss_groups) {
      lines.push(`    ${g.count} missing at the ${g.missing_at}, confirmed ${g.first} to ${g.last} in ${g.phase} (${g.step}), from ${g.users.length} senders: ${g.users.slice(0, 6).join(' ')}${g.users.length > 6 ? ' …' : ''}`);
    }
    for (const l of v.losses) lines.push(`    lost ${l.cid} (${l.from}→${l.to}) at the ${l.missing_at}: confirmed ${l.confirmed} in ${l.phase} (${l.step}) via ${l.gateway}; owners then ${l.owners}`);
    for (const p of v.problems) lines.push(`    ${p}`);
  }
  for (const a of result.anomalies.slice(0, 10)) lines.push(`  anomaly: ${a}`);
  if (result.anomalies.length > 10) lines.push(`  … ${result.anomalies.length - 10} more anomalies (see --json)`);
  if (problems.length) lines.push(`  node log warnings and errors (phase, count, nodes, first at):`);
  for (const p of problems.slice(0, 15)) lines.push(`    ${p.phase} ×${p.count} ${p.nodes.join(',')} ${p.first}: ${p.msg}`);
  if (problems.length > 15) lines.push(`    … ${problems.length - 15} more kinds (see --json)`);
  const busy = Object.entries(results).filter(([, r]) => r.cores_other > OTHER_CORES_WARN);
  if (busy.length) {
    lines.push(`  WARNING: other processes kept ${busy.map(([n, r]) => `${r.cores_other} cores busy in ${n}`).join(', ')}: the ratios are skewed`);
  }
  for (const f of b.failures) lines.push(`  FAILED: ${f}`);
  return { result, lines };
}
