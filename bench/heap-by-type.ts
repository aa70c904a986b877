// What a V8 heap snapshot holds, by constructor: count and self size, largest first.
//   node bench/heap-by-type.ts FILE.heapsnapshot [--top 40] [--per N] [--retainers NAME]
// --per N also divides each size by N (bytes per connection, when N connections were open).
// --retainers NAME lists what holds the objects of that name (as in the table: "object Foo"), by
// the holder's name and the edge's.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' }, per: { type: 'string' }, retainers: { type: 'string' } } });
const file = positionals[0];
if (!file) {
  process.stderr.write('usage: node bench/heap-by-type.ts FILE.heapsnapshot [--top N] [--per CONNS]\n');
  process.exit(2);
}
type Snapshot = { snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } }; nodes: number[]; edges: number[]; strings: string[] };
const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = s.snapshot.meta.node_fields;
const width = fields.length;
const [TYPE, NAME, SIZE] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
const types = s.snapshot.meta.node_types[0];
const by = new Map<string, { count: number; size: number }>();
let total = 0;
// Strings, numbers and code are grouped by their type; objects by their constructor's name.
const keyOf = (i: number) => {
  const type = types[s.nodes[i + TYPE!]!]!;
  return ['object', 'closure', 'native'].includes(type) ? `${type} ${s.strings[s.nodes[i + NAME!]!]}` : type;
};
if (values.retainers) {
  const ew = s.snapshot.meta.edge_fields.length;
  const [ETYPE, ENAME, ETO] = ['type', 'name_or_index', 'to_node'].map((f) => s.snapshot.meta.edge_fields.indexOf(f));
  const etypes = s.snapshot.meta.edge_types[0];
  const ECOUNT = fields.indexOf('edge_count');
  const holders = new Map<string, number>();
  for (let i = 0, e = 0; i < s.nodes.length; i += width) {
    for (let k = 0; k < s.nodes[i + ECOUNT]!; k++, e += ew) {
      const to = s.edges[e + ETO!]!;
      if (keyOf(to) !== values.retainers) continue;
      const et = etypes[s.edges[e + ETYPE!]!]!;
      const name = ['element', 'hidden'].includes(et) ? `[${et}]` : s.strings[s.edges[e + ENAME!]!];
      const h = `${keyOf(i)} .${name}`;
      holders.set(h, (holders.get(h) ?? 0) + 1);
    }
  }
  for (const [h, n] of [...holders].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`${n.toLocaleString('en-US').padStart(9)}  ${h}`);
  process.exit(0);
}
for (let i = 0; i < s.nodes.length; i += width) {
  const key = keyOf(i);
  const size = s.nodes[i + SIZE!]!;
  const e = by.get(key) ?? { count: 0, size: 0 };
  e.count++;
  e.size += size;
  by.set(key, e);
  total += size;
}
const per = values.per ? Number(values.per) : undefined;
console.log(`${(total / 2 ** 20).toFixed(1)} MiB in ${(s.nodes.length / width).toLocaleString('en-US')} objects${per ? `; per connection: ${(total / per).toFixed(0)} B` : ''}`);
console.log(per ? '| what | count | MiB | per conn: count | B |' : '| what | count | MiB |');
console.log(per ? '| --- | ---: | ---: | ---: | ---: |' : '| --- | ---: | ---: |');
for (const [k, v] of [...by].sort((a, b) => b[1].size - a[1].size).slice(0, Number(values.top))) {
  const row = [k.slice(0, 60).replace(/\|/g, '\\|'), v.count.toLocaleString('en-US'), (v.size / 2 ** 20).toFixed(2)];
  if (per) row.push((v.count / per).toFixed(2), (v.size / per).toFixed(0));
  console.log(`| ${row.join(' | ')} |`);
}
