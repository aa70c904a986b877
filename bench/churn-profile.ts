// bench:churn --profile: where the churn phase's extra CPU went, per stage of a message's path
// (bench/stages.ts), from the nodes' CPU profiles cut by phase. Main threads only (the profiler's
// view); a node killed by the schedule wrote no profile for that life.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ownerSamples, stageSamples } from './stages.ts';
import type { Phase } from './churn-common.ts';

function profileFiles(dir: string): string[] {
  try {
    return readdirSync(join(dir, 'profiles')).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, 'profiles', f));
  } catch {
    return [];
  }
}

/** Each step's window (to the next step, the last to the churn phase's end): the main threads'
 * samples beyond its sends at the steady phase's cost per send, by the nearest function of ours on
 * the stack (bench/stages.ts ownerSamples), the `top` largest. */
export function stepProfileLines(dir: string, phases: Phase[], steps: { step: string; node: string; us?: number; totals?: { confirmed: number } }[], top = 12): string[] {
  const steady = phases.find((p) => p.name === 'steady');
  const churn = phases.find((p) => p.name === 'churn');
  const files = profileFiles(dir);
  const marks = steps.filter((s) => s.us !== undefined && s.totals);
  if (!steady?.endUs || !churn?.endUs || !churn.totalsEnd || !steady.confirmed || !files.length || !marks.length) return [];
  const sum = (a: number, b: number) => {
    const out = new Map<string, number>();
    for (const f of files) for (const [k, us] of ownerSamples(f, a, b)) out.set(k, (out.get(k) ?? 0) + us);
    return out;
  };
  const base = sum(steady.startUs, steady.endUs);
  const lines: string[] = [];
  marks.forEach((m, i) => {
    const end = marks[i + 1]?.us ?? churn.endUs!;
    const win = sum(m.us!, end);
    const sends = (marks[i + 1]?.totals ?? churn.totalsEnd!).confirmed - m.totals!.confirmed;
    const rows = [...new Set([...win.keys(), ...base.keys()])]
      .map((k) => ({ k, extra: ((win.get(k) ?? 0) - ((base.get(k) ?? 0) / steady.confirmed) * sends) / 1e6 }))
      .sort((a, b) => b.extra - a.extra);
    const all = rows.reduce((a, r) => a + r.extra, 0);
    lines.push(`\n  ${m.step} ${m.node}: ${((end - m.us!) / 1e6).toFixed(1)} s, main threads' extra ${all.toFixed(2)} s; by the nearest function of ours:`);
    for (const r of rows.slice(0, top)) lines.push(`    ${r.k.slice(0, 70).padEnd(70)} ${r.extra.toFixed(2).padStart(6)} s`);
  });
  return lines;
}

export function profileLines(dir: string, phases: Phase[], split = false): string[] {
  const steady = phases.find((p) => p.name === 'steady');
  const churn = phases.find((p) => p.name === 'churn');
  const files = profileFiles(dir);
  if (!steady?.endUs || !churn?.endUs || !steady.confirmed || files.length === 0) return ['  profile: no profiles or phases to cut them by'];
  const sum = (p: Phase) => {
    const out = new Map<string, number>();
    for (const f of files) for (const [k, us] of stageSamples(f, p.startUs, p.endUs!, split)) out.set(k, (out.get(k) ?? 0) + us);
    return out;
  };
  const s = sum(steady);
  const c = sum(churn);
  const rows = [...new Set([...s.keys(), ...c.keys()])].map((k) => {
    const perSend = (s.get(k) ?? 0) / steady.confirmed;
    const extraS = ((c.get(k) ?? 0) - perSend * churn.confirmed) / 1e6;
    return { k, perSend, churnPerSend: churn.confirmed ? (c.get(k) ?? 0) / churn.confirmed : 0, extraS };
  }).sort((a, b) => b.extraS - a.extraS);
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, x) => a + x, 0) / 1e6;
  const lines = [
    `\n  profile (main threads of ${files.length} node lives; ${total(s).toFixed(1)} s in steady, ${total(c).toFixed(1)} s in churn):`,
    `  ${'stage'.padEnd(58)} ${'µs/send steady'.padStart(14)} ${'µs/send churn'.padStart(13)} ${'extra s'.padStart(8)}`,
  ];
  for (const r of rows) lines.push(`  ${r.k.slice(0, 58).padEnd(58)} ${r.perSend.toFixed(0).padStart(14)} ${r.churnPerSend.toFixed(0).padStart(13)} ${r.extraS.toFixed(2).padStart(8)}`);
  lines.push(`  ${'all'.padEnd(58)} ${(total(s) * 1e6 / steady.confirmed).toFixed(0).padStart(14)} ${(churn.confirmed ? total(c) * 1e6 / churn.confirmed : 0).toFixed(0).padStart(13)} ${(total(c) - total(s) / steady.confirmed * churn.confirmed).toFixed(2).padStart(8)}`);
  return lines;
}
