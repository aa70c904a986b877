// Per-group limits on a three-node cluster, with the group's home, the poster's home and the
// poster's gateway on three different nodes, so that the refusal travels group home → peer reply
// → sender's home → peer reply → gateway: a post past the group's rate or fan-out backlog is
// answered rate_limited (with a retry time), nothing of it is appended, and the cid stays free;
// typing to a group is held to the group's frame budget. Each limit is counted in /metrics.
// And a group log compacted into member snapshots is loaded right by the replica that becomes
// its home after a crash.
import test from 'ava';
import { cleanup, readAll, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { ImError } from '../../src/client/client.ts';
import type { ImClient } from '../../src/client/client.ts';

let cluster: TestCluster;
let n1: TestNode, n2: TestNode, n3: TestNode;
test.before(async () => {
  cluster = await startCluster(3, ['--group-rate', '2', '--group-burst', '4', '--group-backlog', '2', '--group-typing-frames', '20']);
  [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
});
test.after.always(cleanup);

const on = (node: TestNode, prefix: string, group = false): string => cluster.nameOn(node, prefix, group);
type Outcome = { cid: string; ok: true; mid: string } | { cid: string; ok: false; code: string; message: string };
async function post(c: ImClient, g: string, cid: string): Promise<Outcome> {
  try {
    return { cid, ok: true, mid: (await c.sendGroup(g, cid, `body ${cid}`)).mid };
  } catch (e) {
    if (!(e instanceof ImError)) throw e;
    return { cid, ok: false, code: e.code, message: e.message };
  }
}
async function limited(n: TestNode, reason: string): Promise<number> {
  const m = new RegExp(`^im_group_limited_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`, 'm').exec((await n.get('/metrics')).text);
  return m ? Number(m[1]) : 0;
}
/** The group's messages in a member's timeline, by body. */
const bodies = async (c: ImClient, g: string) => (await readAll(c)).filter((e) => e.conv === `g:${g}`).map((e) => e.body);

test('posts past the group\'s rate are rate_limited with a retry time; nothing of them is appended; the cid stays free', async (t) => {
  const g = on(n1, 'rate', true);
  const alice = on(n2, 'rate-a');
  const bob = on(n3, 'rate-b');
  const { c: a } = await n3.login(alice);
  const { c: b } = await n1.login(bob);
  await a.group('create', g, [bob]);
  const t0 = Date.now();
  const out: Outcome[] = [];
  for (let i = 0; i < 12; i++) out.push(await post(a, g, `r${i}`));
  const elapsedS = (Date.now() - t0) / 1000;
  const sent = out.filter((o) => o.ok);
  const refused = out.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
  t.true(refused.length > 0, `${refused.length} of 12 refused in ${elapsedS} s`);
  t.true(sent.length <= 4 + Math.ceil(elapsedS * 2) + 1, `${sent.length} sent in ${elapsedS} s (burst 4, then 2/s)`);
  for (const r of refused) {
    t.is(r.code, 'rate_limited');
    t.regex(r.message, /over 2 messages\/s; retry in \d+ ms/);
  }
  // Exactly the sent ones reached the member; a refused cid goes through later as a new message.
  await until(async () => (await bodies(b, g)).length === sent.length, 'the sent messages at the member');
  t.deepEqual(await bodies(b, g), sent.map((o) => `body ${o.cid}`));
  // Resent after the time each refusal names, as a client does (the bucket is shared by the
  // group's senders, so one wait may not be enough on a slow machine).
  const retry = refused[0]!;
  let again: Awaited<ReturnType<typeof a.sendGroup>> | undefined;
  for (let wait = Number(/retry in (\d+) ms/.exec(retry.message)![1]); !again;) {
    await new Promise((r) => setTimeout(r, wait + 50));
    again = await a.sendGroup(g, retry.cid, `body ${retry.cid}`).catch((e: ImError) => {
      if (e.code !== 'rate_limited') throw e;
      wait = Number(/retry in (\d+) ms/.exec(e.message)?.[1] ?? 500);
      return undefined;
    });
  }
  t.falsy(again.dup, 'nothing was kept under the refused cid');
  await until(async () => (await bodies(b, g)).includes(`body ${retry.cid}`), 'the resent message at the member');
  t.true(await limited(n1, 'rate') >= refused.length, 'counted at the group\'s home');
});

test('posts past the fan-out backlog are rate_limited and append nothing', async (t) => {
  const g = on(n1, 'back', true);
  const alice = on(n2, 'back-a');
  const bob = on(n3, 'back-b');
  const { c: a } = await n3.login(alice);
  const { c: b } = await n1.login(bob);
  await a.group('create', g, [bob]);
  // All in flight at once: the sender's home hands them over in batches, each answered once
  // fanned out; past 2 not yet fanned out, the group's home refuses the rest of a batch.
  const out = await Promise.all(Array.from({ length: 10 }, (_, i) => post(a, g, `b${i}`)));
  const sent = out.filter((o) => o.ok);
  const refused = out.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
  t.true(refused.length > 0);
  t.true(refused.every((r) => r.code === 'rate_limited'), JSON.stringify(refused.map((r) => r.code)));
  t.true(refused.some((r) => /group \S+ has \d+ messages not yet handed to its members; retry in \d+ ms/.test(r.message)), refused.map((r) => r.message).join('\n'));
  await until(async () => (await bodies(b, g)).length === sent.length, 'the sent messages at the member');
  t.deepEqual(new Set(await bodies(b, g)), new Set(sent.map((o) => `body ${o.cid}`)), 'only the sent ones are in the member\'s timeline');
  t.deepEqual(new Set((await readAll(a)).filter((e) => e.conv === `g:${g}`).map((e) => e.body)), new Set(sent.map((o) => `body ${o.cid}`)), 'and in the sender\'s');
  t.true(await limited(n1, 'backlog') > 0);
});

test('typing to a group is held to the group\'s frame budget, whichever member types', async (t) => {
  const g = on(n2, 'typ', true);
  const owner = on(n1, 'typ-o');
  const others = Array.from({ length: 9 }, (_, i) => `typ-m${i}`);
  const { c: o } = await n3.login(owner);
  const { c: m0 } = await n1.login(others[0]!);
  await o.group('create', g, others);
  // 9 frames a notice, 20 frames/s, burst 40: four notices at once, then about two a second.
  // Ten at once (five per member, within the per-connection burst): some are refused, whatever
  // the machine's speed, and the first four never are.
  const answers = await Promise.all([o, m0, o, m0, o, m0, o, m0, o, m0].map((c) => c.typing({ group: g }).then(() => 'ok', (e: ImError) => `${e.code}: ${e.message}`)));
  const refusedTyping = answers.filter((a) => a !== 'ok');
  t.true(answers.filter((a) => a === 'ok').length >= 4, answers.join('\n'));
  t.true(refusedTyping.length > 0, answers.join('\n'));
  for (const r of refusedTyping) t.regex(r, /^rate_limited: (rate_limited: )?group \S+ is over its typing budget of 20 frames\/s \(9 members to notify\); retry in \d+ ms/);
  t.true(await limited(n2, 'typing') > 0);
});

test('a group log compacted into member snapshots survives the crash of its home: the replica loads the latest snapshot and fans out to the right members', async (t) => {
  const c2 = await startCluster(3, ['--group-snapshot-events', '4']);
  const [x, y, z] = c2.nodes as [TestNode, TestNode, TestNode];
  const g = c2.nameOn(x, 'snap', true);
  const owner = c2.nameOn(y, 'snap-o');
  const { c: o } = await y.login(owner);
  const users = Array.from({ length: 8 }, (_, i) => c2.nameOn(i % 2 ? y : z, `snap-u${i}-`));
  await o.group('create', g, users.slice(0, 4));
  const members = new Set([owner, ...users.slice(0, 4)]);
  // Enough membership changes for several snapshots, with messages between them.
  for (let i = 0; i < 12; i++) {
    const u = users[i % users.length]!;
    if (members.has(u)) {
      await o.group('remove', g, [u]);
      members.delete(u);
    } else {
      await o.group('add', g, [u]);
      members.add(u);
    }
    if (i % 4 === 0) await o.sendGroup(g, `snap-m${i}`, `before ${i}`);
  }
  const snaps = /^im_group_snapshots_total\{[^}]*\} (\d+)/m.exec((await x.get('/metrics')).text);
  t.true(Number(snaps?.[1] ?? 0) >= 2, `snapshots written: ${snaps?.[1]}`);
  await x.kill();
  await c2.converged(30_000);
  const info = await until(async () => {
    try {
      return await o.groupInfo(g);
    } catch (e) {
      if (e instanceof ImError && e.code === 'unavailable') return undefined;
      throw e;
    }
  }, 'group_info from the new home', 20_000, 100);
  t.deepEqual(new Set(info!.members), members);
  t.is(info!.owner, owner);
  const sent = await until(async () => {
    try {
      return await o.sendGroup(g, 'snap-after', 'after the crash');
    } catch (e) {
      if (e instanceof ImError && e.code === 'unavailable') return undefined;
      throw e;
    }
  }, 'a post on the new home', 20_000, 100);
  for (const u of users) {
    const { c } = await (u === users[0] ? z : y).login(u);
    const has = (await readAll(c)).some((e) => e.mid === sent!.mid);
    t.is(has, members.has(u), `${u} ${members.has(u) ? 'is' : 'is not'} a member`);
    c.close();
  }
});
