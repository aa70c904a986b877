// Small shared helpers: member colours, name order, number formats.

// Distinct on white and for the common colour-vision deficiencies (Okabe-Ito, then Tableau).
const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#d55e00', '#56b4e9', '#8c564b', '#7f7f7f', '#bcbd22', '#17becf'];
const assigned = new Map<string, string>();

/**
 * A member's colour, the same in the ring, the table and the charts, and stable while the page is
 * open: given in the order members are first seen (sorted at load), reusing the colour of none.
 */
export function colorOf(name: string): string {
  let c = assigned.get(name);
  if (!c) {
    const used = new Set(assigned.values());
    c = PALETTE.find((p) => !used.has(p)) ?? `hsl(${(assigned.size * 137.5) % 360} 60% 45%)`;
    assigned.set(name, c);
  }
  return c;
}

/** node-2 before node-10. */
export const byName = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

export function fmtInt(n: number | undefined | null): string {
  return n === undefined || n === null ? '–' : Math.round(n).toLocaleString('en');
}

export function fmtRate(n: number | undefined | null): string {
  if (n === undefined || n === null) return '–';
  return n >= 100 ? Math.round(n).toLocaleString('en') : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export function fmtPercent(f: number | undefined): string {
  return f === undefined ? '–' : `${(f * 100).toFixed(1)}%`;
}

export function fmtMs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}
