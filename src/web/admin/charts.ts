// Small live charts of the last two minutes (uPlot on canvas: cheap to redraw every second), one
// series per member that the serving node polls; a member that joins adds a series, one declared
// dead (no longer polled) takes its series away.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { History, Metric } from './history.ts';
import { colorOf } from './util.ts';

const HEIGHT = 110;

type Props = { history: History; names: string[]; tick: number };

export function Charts({ history, names, tick }: Props) {
  return html`
    <section class="panel charts-panel">
      <h2>Last two minutes</h2>
      <div class="chart-legend">
        ${names.map((n) => html`<span key=${n}><i class="swatch" style=${{ background: colorOf(n) }}></i>${n}</span>`)}
      </div>
      <${Chart} title="messages / s" metric="msgs" history=${history} names=${names} tick=${tick} />
      <${Chart} title="peer traffic KiB / s (in + out)" metric="kib" history=${history} names=${names} tick=${tick} />
      <${Chart} title="client connections" metric="conns" history=${history} names=${names} tick=${tick} />
    </section>`;
}

const clock = (t: number) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

function Chart({ title, metric, history, names, tick }: Props & { title: string; metric: Metric }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = names.join('\n');

  // A new chart when the series change (uPlot can add series, but rebuilding is simpler and rare).
  useEffect(() => {
    const el = box.current!;
    const u = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // Always the whole window, scrolling left, even before two minutes have been seen.
        x: { time: true, range: (_u, _min, max) => [max - history.windowMs / 1000, max] },
        // From 0, and at least 0..1 so that an idle cluster draws flat lines at the bottom.
        y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [
        { size: 22, space: 70, font: '10px system-ui, sans-serif', grid: { stroke: '#eef0f3' }, ticks: { show: false }, values: (_u, splits) => splits.map(clock) },
        { size: 40, font: '10px system-ui, sans-serif', grid: { stroke: '#eef0f3' }, ticks: { show: false } },
      ],
      series: [{}, ...names.map((n) => ({ label: n, stroke: colorOf(n), width: 1.5, points: { show: false } }))],
    }, history.data(metric, names) as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [key]);

  useEffect(() => {
    plot.current?.setData(history.data(metric, names) as uPlot.AlignedData);
  }, [tick]);

  return html`
    <figure class="chart" data-test="chart" data-metric=${metric}>
      <figcaption>${title}</figcaption>
      <div ref=${box}></div>
    </figure>`;
}
