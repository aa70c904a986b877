// The ring as a circle: the key space 0..2^32 clockwise from the top, each member's arcs in its
// colour. A ring of n members has 640·n points, so there are about as many arcs; they are drawn
// as one path per member (one SVG element each, not thousands), built once per ring version.
import { html } from 'htm/preact';
import { useMemo } from 'preact/hooks';
import type { RingView } from './types.ts';
import { byName, colorOf, fmtPercent } from './util.ts';

const SPACE = 2 ** 32;
const SIZE = 240;
const C = SIZE / 2;
const R = 96;
const WIDTH = 28;

const at = (pos: number): string => {
  const a = (pos / SPACE) * 2 * Math.PI - Math.PI / 2;
  return `${(C + R * Math.cos(a)).toFixed(2)} ${(C + R * Math.sin(a)).toFixed(2)}`;
};

/** One path per member: a move and an arc command per arc of that member. */
export function ringPaths(arcs: RingView['arcs']): Map<string, string> {
  const parts = new Map<string, string[]>();
  for (const [start, end, member] of arcs) {
    let list = parts.get(member);
    if (!list) parts.set(member, (list = []));
    const span = end - start;
    if (span <= 0) continue;
    if (span >= SPACE - 1) {
      // The whole circle (one member): an arc cannot end where it starts, so two halves.
      list.push(`M${at(start)}A${R} ${R} 0 0 1 ${at(start + SPACE / 2)}A${R} ${R} 0 0 1 ${at(start)}`);
    } else {
      list.push(`M${at(start)}A${R} ${R} 0 ${span > SPACE / 2 ? 1 : 0} 1 ${at(end)}`);
    }
  }
  return new Map([...parts].map(([m, l]) => [m, l.join('')]));
}

export function Ring({ ring }: { ring: RingView | undefined }) {
  const paths = useMemo(() => (ring ? ringPaths(ring.arcs) : new Map<string, string>()), [ring?.version]);
  if (!ring) return html`<section class="panel ring-panel"><h2>Ring</h2><p class="muted">loading…</p></section>`;
  const members = [...ring.members].sort(byName);
  return html`
    <section class="panel ring-panel">
      <h2>Ring</h2>
      <svg data-test="ring" data-version=${ring.version} class="ring" viewBox=${`0 0 ${SIZE} ${SIZE}`} role="img"
        aria-label=${`hash ring of ${members.length} members`}>
        <circle cx=${C} cy=${C} r=${R} fill="none" stroke="#eceff3" stroke-width=${WIDTH} />
        ${members.map((m) => html`
          <path key=${m} data-member=${m} d=${paths.get(m) ?? ''} fill="none" stroke=${colorOf(m)} stroke-width=${WIDTH}>
            <title>${m}: ${fmtPercent(ring.share[m])} of keys</title>
          </path>`)}
        <text x=${C} y=${C - 8} text-anchor="middle" class="ring-count">${members.length} ${members.length === 1 ? 'member' : 'members'}</text>
        <text x=${C} y=${C + 14} text-anchor="middle" class="ring-version">ring ${ring.version.slice(0, 8)}</text>
      </svg>
      <ul class="legend">
        ${members.map((m) => html`
          <li key=${m} data-test="ring-legend" data-member=${m} data-share=${((ring.share[m] ?? 0) * 100).toFixed(2)}>
            <i class="swatch" style=${{ background: colorOf(m) }}></i>${m} <b>${fmtPercent(ring.share[m])}</b>
          </li>`)}
      </ul>
      <p class="muted small">${ring.vnodes} vnodes per member, ${ring.replicas} copies of each key</p>
    </section>`;
}
