// The cluster page: header, ring, charts and members table, all from one poll loop.
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { setToken } from './api.ts';
import { Charts } from './charts.ts';
import { Header } from './header.ts';
import { History, Peaks } from './history.ts';
import { Members } from './members.ts';
import { startPoller } from './poller.ts';
import type { Poller, View } from './poller.ts';
import { Ring } from './ring.ts';
import { TokenForm } from './token.ts';
import { byName, colorOf } from './util.ts';

export function App() {
  const history = useMemo(() => new History(), []);
  const peaks = useMemo(() => new Peaks(), []);
  const [view, setView] = useState<View>({ needToken: false, refused: false });
  const [tick, setTick] = useState(0);
  const [now, setNow] = useState(Date.now());
  const poller = useRef<Poller | null>(null);

  useEffect(() => {
    const p = startPoller(history, peaks, (v) => {
      setView(v);
      setTick((t) => t + 1);
    });
    poller.current = p;
    return () => p.stop();
  }, []);
  // The retry countdown only.
  useEffect(() => {
    if (!view.failure) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [!!view.failure]);

  const { stats, ring } = view;
  // Series: the members the serving node polls (every one not dead).
  const names = useMemo(() => (stats ? stats.nodes.map((n) => n.name).sort(byName) : []), [stats?.nodes.map((n) => n.name).join('\n')]);
  // Colours in name order on first sight, so that a reload gives the same ones.
  for (const n of [...(ring?.members ?? []), ...names].sort(byName)) colorOf(n);

  if (view.needToken) {
    return html`
      <${Header} view=${view} now=${now} />
      <main><${TokenForm} refused=${view.refused} onSubmit=${(t: string) => {
        setToken(t);
        poller.current?.now();
      }} /></main>`;
  }
  return html`
    <${Header} view=${view} now=${now} />
    <main class=${view.failure ? 'stale' : ''}>
      ${stats ? html`
        <div class="grid">
          <${Ring} ring=${ring} />
          <${Charts} history=${history} names=${names} tick=${tick} />
        </div>
        <${Members} stats=${stats} ring=${ring} history=${history} peaks=${peaks} />`
        : view.failure ? '' : html`<p class="muted">loading…</p>`}
    </main>`;
}
