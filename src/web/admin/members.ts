// The members table: one row per member the serving node knows (dead ones too, which it no longer
// polls), with its state as that node sees it and what the member itself reports.
import { html } from 'htm/preact';
import type { History, Peaks } from './history.ts';
import type { ClusterBody, MemberState, NodeStats, RingView, Stats } from './types.ts';
import { byName, colorOf, fmtInt, fmtMs, fmtPercent, fmtRate } from './util.ts';

type Row = { name: string; url: string; state: MemberState; node?: NodeStats };

export function memberRows(stats: Stats): Row[] {
  const self = stats.nodes.find((n) => n.name === stats.via)?.cluster;
  const polled = new Map(stats.nodes.map((n) => [n.name, n]));
  const rows = new Map<string, Row>();
  for (const m of self?.members ?? []) rows.set(m.name, { name: m.name, url: m.url, state: m.state, ...(polled.has(m.name) ? { node: polled.get(m.name)! } : {}) });
  // A node still starting answers /cluster without members: the polled list is all there is.
  for (const n of stats.nodes) if (!rows.has(n.name)) rows.set(n.name, { name: n.name, url: n.url, state: n.member, node: n });
  return [...rows.values()].sort((a, b) => byName(a.name, b.name));
}

export function Members({ stats, ring, history, peaks }: { stats: Stats; ring: RingView | undefined; history: History; peaks: Peaks }) {
  const rows = memberRows(stats);
  return html`
    <section class="panel members-panel">
      <h2>Members</h2>
      <div class="table-wrap">
        <table class="members">
          <thead>
            <tr>
              <th>member</th><th>state</th><th class="num" title="share of the key space this member is home of">keys</th>
              <th class="num">conns</th><th class="num">sessions</th><th class="num">msgs/s</th>
              <th class="num" title="peer traffic in / out">peer KiB/s</th><th class="num" title="(replica, user) pairs not yet in sync">repl. behind</th>
              <th>handoffs</th><th>reachable</th>
            </tr>
          </thead>
          <tbody>
            ${rows.map((r) => html`<${MemberRow} key=${r.name} row=${r} ring=${ring} history=${history} peaks=${peaks} via=${stats.via} />`)}
          </tbody>
        </table>
      </div>
    </section>`;
}

function MemberRow({ row, ring, history, peaks, via }: { row: Row; ring: RingView | undefined; history: History; peaks: Peaks; via: string }) {
  const c: ClusterBody | undefined = row.node?.reachable ? row.node.cluster : undefined;
  return html`
    <tr data-test="member" data-name=${row.name} data-state=${row.state} class=${`state-${row.state}`}>
      <td>
        <i class="swatch" style=${{ background: colorOf(row.name) }}></i><b>${row.name}</b>${row.name === via ? html` <span class="tag">this node</span>` : ''}
        <div class="url muted small">${row.url}</div>
      </td>
      <td><span class=${`state state-${row.state}`}>${row.state}</span></td>
      <td class="num">${ring && row.name in ring.share ? fmtPercent(ring.share[row.name]) : '–'}</td>
      <td class="num">${fmtInt(c?.connections)}</td>
      <td class="num">${fmtInt(c?.sessions)}</td>
      <td class="num" data-test="msgs-rate">${fmtRate(c ? history.latest('msgs', row.name) : null)}</td>
      <td class="num">${fmtRate(c ? history.latest('kibIn', row.name) : null)} / ${fmtRate(c ? history.latest('kibOut', row.name) : null)}</td>
      <td class="num">${fmtInt(c?.migrations?.replicationBehind)}</td>
      <td><${Work} name=${row.name} c=${c} peaks=${peaks} /></td>
      <td>${reach(row)}</td>
    </tr>`;
}

function reach(row: Row) {
  if (!row.node) return html`<span class="muted" title="the serving node does not poll dead members">not polled</span>`;
  if (row.node.reachable) return html`<span class="ok">yes</span> <span class="muted small">${row.node.ms ?? 0} ms</span>`;
  return html`<span class="bad" title=${row.node.error ?? ''}>no</span> <span class="muted small">${shortError(row.node.error)}</span>`;
}

function shortError(e: string | undefined): string {
  if (!e) return '';
  if (/abort|timeout/i.test(e)) return 'timed out';
  if (/fetch failed|ECONNREFUSED/i.test(e)) return 'refused';
  return e.length > 24 ? `${e.slice(0, 24)}…` : e;
}

/**
 * Handoffs and re-replication in flight. A copy reports how much it moved but not how much there
 * is (no total), so its bar is indeterminate; re-replication reports how much is left, so its bar
 * shows the share done since the backlog peaked.
 */
function Work({ name, c, peaks }: { name: string; c: ClusterBody | undefined; peaks: Peaks }) {
  const m = c?.migrations;
  if (!m) return html`<span class="muted">–</span>`;
  const items = [];
  if (m.copying) {
    const p = m.copying;
    items.push(html`
      <div class="work" data-test="handoff" data-kind=${p.kind}>
        <span>${p.kind === 'join' ? 'joining' : 'leaving'}: ${p.phase === 'bulk' ? 'bulk copy' : 'final copy'}, ${fmtInt(p.users)} users, ${fmtInt(p.entries)} entries, ${fmtMs(p.ms)} (${fmtInt(p.perSecond)}/s)</span>
        <progress title=${`${p.phase} phase`}></progress>
      </div>`);
  }
  for (const to of m.handoffsOut) {
    items.push(html`
      <div class="work" data-test="handoff" data-kind="out">
        <span>handing keys to ${to} (writes paused)</span>
        <progress></progress>
      </div>`);
  }
  for (const [to, r] of Object.entries(m.replication).sort(([a], [b]) => byName(a, b))) {
    const done = peaks.get(`${name}>${to}`);
    if (done === null && r.queued + r.inflight + r.deferred === 0) continue;
    items.push(html`
      <div class="work" data-test="replication" data-to=${to}>
        <span>to ${to}: ${fmtInt(r.behind)} behind, ${fmtInt(r.queued + r.inflight)} queued${r.deferred ? `, ${fmtInt(r.deferred)} deferred` : ''}</span>
        ${done !== null ? html`<progress max="1" value=${done.toFixed(3)}></progress>` : ''}
      </div>`);
  }
  return items.length ? items : html`<span class="muted">none</span>`;
}
