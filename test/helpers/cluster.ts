// Starts several real node processes that form one cluster on 127.0.0.1 (a shared private
// network key, node 1 as the seed), and waits until their views of the ring agree.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup, startNode, until } from './node.ts';
import type { TestNode } from './node.ts';
import { createRing } from '../../src/ring/index.ts';
import type { Ring } from '../../src/ring/index.ts';

export type ClusterView = {
  node: string;
  joined: boolean;
  members: { name: string; peer: string; url: string; state: string }[];
  ring: { version: string; vnodes: number; replicas: number; members: string[] };
  owned: number;
};

export class TestCluster {
  nodes: TestNode[] = [];
  psk: string;
  args: string[];
  private next = 1;

  constructor(psk: string, args: string[]) {
    this.psk = psk;
    this.args = args;
  }

  /** Starts one more node that joins through every live node. */
  async add(opts: { wait?: boolean } = {}): Promise<TestNode> {
    const seeds = this.live().flatMap((n) => ['--join', n.p2p]);
    const n = await startNode({ name: `n${this.next++}`, args: ['--psk-file', this.psk, ...this.args, ...seeds] });
    this.nodes.push(n);
    if (opts.wait !== false) await this.converged();
    return n;
  }

  /** The ring of every node started so far (what they agree on once converged with none down). */
  ring(): Ring {
    return createRing(this.nodes.map((n) => n.opts.name!));
  }

  /** A name `<prefix><i>` whose key (the user, or with `group` the key `g:<name>`) is homed on `node`. */
  nameOn(node: TestNode, prefix: string, group = false): string {
    const ring = this.ring();
    for (let i = 0; ; i++) if (ring.owner(group ? `g:${prefix}${i}` : `${prefix}${i}`) === node.opts.name) return `${prefix}${i}`;
  }

  live(): TestNode[] {
    return this.nodes.filter((n) => n.running());
  }

  async view(n: TestNode): Promise<ClusterView | undefined> {
    try {
      const r = await fetch(`${n.http}/cluster`, { signal: AbortSignal.timeout(2000) });
      return (await r.json()) as ClusterView;
    } catch {
      return undefined;
    }
  }

  /** Waits until every live node is joined, lists exactly the live nodes as up, on one ring version. */
  async converged(timeoutMs = 15_000): Promise<string> {
    return until<string | undefined>(async () => {
      const live = this.live();
      const names = live.map((n) => n.opts.name).sort();
      const views = await Promise.all(live.map((n) => this.view(n)));
      const versions = new Set<string>();
      for (const v of views) {
        // Joined, and holding the write lease (a newcomer gets it once it has heard a majority).
        if (!v?.joined || (v as { lease?: boolean }).lease === false) return undefined;
        const up = v.members.filter((m) => m.state === 'up').map((m) => m.name).sort();
        if (JSON.stringify(up) !== JSON.stringify(names) || JSON.stringify(v.ring.members) !== JSON.stringify(names)) return undefined;
        versions.add(v.ring.version);
      }
      return versions.size === 1 ? [...versions][0] : undefined;
    }, 'the cluster to converge', timeoutMs, 50) as Promise<string>;
  }
}

export async function startCluster(n: number, args: string[] = []): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'im-psk-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const psk = join(dir, 'swarm.key');
  await writeFile(psk, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`, { mode: 0o600 });
  const c = new TestCluster(psk, args);
  for (let i = 0; i < n; i++) await c.add({ wait: false });
  await c.converged();
  return c;
}
