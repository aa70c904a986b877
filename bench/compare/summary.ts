// The report: one line per run as it ends, then per system the medians over the rounds and the
// ratios of this project (`im`) against every other system, from the medians and round by round
// (runs of one round ran back to back, so their ratio is the one least moved by a noisy machine).
import type { RunResult } from './run.ts';
import type { SystemName } from './shape.ts';

export type Failure = { system: SystemName; round: number; error: string };

export function median(a: number[]): number | null {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const n0 = (x: number | null) => (x === null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const n1 = (x: number | null) => (x === null ? 'n/a' : x.toFixed(1));

export function runLine(r: RunResult): string {
  return `${r.system.padEnd(9)} ${n0(r.msgsPerS).padStart(7)} msgs/s  p50 ${n1(r.p50ms)} ms  p99 ${n1(r.p99ms)} ms  ` +
    `lost ${r.lost} dup ${r.dups} ooo ${r.outOfOrder}  server CPU ${r.serverCpuS.toFixed(2)} s (${n0(r.cpuUsPerMsg)} µs/msg)  ` +
    `load CPU ${r.loadCpuS.toFixed(2)} s  connect ${r.connectS.toFixed(1)} s` +
    (r.timedOut ? `  TIMED OUT (${r.unacked} sends unacked)` : '') + (r.sendErrors ? `  send errors ${r.sendErrors} (${r.firstError})` : '') +
    (r.errors ? `  errors ${r.errors} (first: ${r.firstError})` : '') + (r.closed ? `  closed ${r.closed}` : '') + (r.stray ? `  stray ${r.stray}` : '');
}

export type SystemSummary = {
  system: SystemName; runs: number; msgsPerS: number | null; p50ms: number | null; p99ms: number | null;
  cpuUsPerMsg: number | null; serverCpuS: number | null; loadCpuS: number | null; lost: number; dups: number; outOfOrder: number;
};

export type Ratio = { other: SystemName; msgsPerS: number | null; cpuPerMsg: number | null; rounds: { round: number; msgsPerS: number | null; cpuPerMsg: number | null }[] };

export function summarize(systems: SystemName[], results: RunResult[]): { systems: SystemSummary[]; ratios: Ratio[] } {
  const per = systems.map((system): SystemSummary => {
    const rs = results.filter((r) => r.system === system);
    const med = (f: (r: RunResult) => number | null) => median(rs.map(f).filter((v): v is number => v !== null));
    const total = (f: (r: RunResult) => number) => rs.reduce((n, r) => n + f(r), 0);
    return {
      system, runs: rs.length, msgsPerS: med((r) => r.msgsPerS), p50ms: med((r) => r.p50ms), p99ms: med((r) => r.p99ms),
      cpuUsPerMsg: med((r) => r.cpuUsPerMsg), serverCpuS: med((r) => r.serverCpuS), loadCpuS: med((r) => r.loadCpuS),
      lost: total((r) => r.lost), dups: total((r) => r.dups), outOfOrder: total((r) => r.outOfOrder),
    };
  });
  const div = (a: number | null | undefined, b: number | null | undefined) => (a != null && b ? Math.round((a / b) * 100) / 100 : null);
  const im = per.find((p) => p.system === 'im');
  const ratios = !im ? [] : per.filter((p) => p.system !== 'im').map((o): Ratio => {
    const rounds = [...new Set(results.map((r) => r.round))].sort((a, b) => a - b).flatMap((round) => {
      const a = results.find((r) => r.round === round && r.system === 'im');
      const b = results.find((r) => r.round === round && r.system === o.system);
      return a && b ? [{ round, msgsPerS: div(a.msgsPerS, b.msgsPerS), cpuPerMsg: div(a.cpuUsPerMsg, b.cpuUsPerMsg) }] : [];
    });
    return { other: o.system, msgsPerS: div(im.msgsPerS, o.msgsPerS), cpuPerMsg: div(im.cpuUsPerMsg, o.cpuUsPerMsg), rounds };
  });
  return { systems: per, ratios };
}

export function summaryLines(s: ReturnType<typeof summarize>, failures: Failure[]): string[] {
  const rows = [
    ['system', 'runs', 'msgs/s', 'p50 ms', 'p99 ms', 'server CPU µs/msg', 'server CPU s', 'load CPU s', 'lost / dup / ooo (all runs)'],
    ...s.systems.map((p) => [
      p.system, String(p.runs), n0(p.msgsPerS), n1(p.p50ms), n1(p.p99ms), n0(p.cpuUsPerMsg), p.serverCpuS?.toFixed(2) ?? 'n/a',
      p.loadCpuS?.toFixed(2) ?? 'n/a', `${p.lost} / ${p.dups} / ${p.outOfOrder}`,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = ['', 'medians over the runs of each system:'];
  for (const r of rows) lines.push(('  ' + r.map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).trimEnd());
  if (s.ratios.length) {
    const x = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(2)}×`);
    lines.push('', 'im against each (msgs/s: im ÷ other, above 1 = im faster; CPU per msg: im ÷ other, above 1 = im costs more):');
    for (const r of s.ratios) {
      const byRound = r.rounds.length > 1
        ? `   by round: msgs/s ${r.rounds.map((q) => x(q.msgsPerS)).join(' ')}; CPU per msg ${r.rounds.map((q) => x(q.cpuPerMsg)).join(' ')}`
        : '';
      lines.push(`  im / ${r.other.padEnd(9)}  msgs/s ${x(r.msgsPerS)}  CPU per msg ${x(r.cpuPerMsg)}${byRound}`);
    }
  }
  if (failures.length) {
    lines.push('', `${failures.length} run(s) failed:`);
    for (const f of failures) lines.push(`  round ${f.round} ${f.system}: ${f.error.split('\n').slice(0, 6).join('\n    ')}`);
  }
  return lines;
}
