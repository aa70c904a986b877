// The top line: which node serves this page and what it thinks of the cluster.
import { html } from 'htm/preact';
import type { View } from './poller.ts';
import type { MemberState } from './types.ts';

const STATES: MemberState[] = ['up', 'suspect', 'leaving', 'dead'];

export function Header({ view, now }: { view: View; now: number }) {
  const { stats, ring, failure } = view;
  const self = stats?.nodes.find((n) => n.name === stats.via)?.cluster;
  const counts = new Map<string, number>();
  for (const m of self?.members ?? []) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
  const flag = (ok: boolean | undefined, yes: string, no: string, why: string) =>
    ok === undefined ? '' : html`<span class=${`flag ${ok ? 'ok' : 'bad'}`} title=${why}>${ok ? yes : no}</span>`;
  return html`
    <header class="top">
      <h1>imring cluster</h1>
      ${stats ? html`
        <div class="facts" data-test="header">
          <span>via <b data-test="via">${stats.via}</b></span>
          <span title=${ring?.version ?? stats.ring.version}>ring <b data-test="ring-version">${stats.ring.version.slice(0, 8)}</b></span>
          ${ring ? html`<span><b>${ring.replicas}</b> replicas</span>` : ''}
          <span data-test="counts">${STATES.filter((s) => counts.has(s)).map((s) => html`<span class=${`count state-${s}`}><b>${counts.get(s)}</b> ${s}</span>`)}</span>
          ${flag(self?.lease, 'lease', 'no lease', 'whether this node may confirm writes (it hears a majority)')}
          ${flag(self?.majority, 'majority', 'minority', 'whether this node hears a majority of the members it knows')}
          ${self?.insecure ? html`<span class="flag warn" data-test="insecure" title="logins without a token are accepted: development only">insecure</span>` : ''}
        </div>` : ''}
      <div class="status">
        ${failure
          ? html`<span class="bad" data-test="unreachable" role="status">node unreachable (${failure.message}); retrying in ${Math.max(0, Math.ceil((failure.retryAt - now) / 1000))} s</span>`
          : view.updated ? html`<span class="muted small">updated ${new Date(view.updated).toLocaleTimeString()}</span>` : ''}
      </div>
    </header>`;
}
