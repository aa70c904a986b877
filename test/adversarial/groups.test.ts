// A 10,000-member group posted to in a loop, as fast as the node lets it, for about 10 s: the
// group's home answers rate_limited once the fan-out falls behind (its backlog bound: entries and
// bytes of member copies not yet made) rather than letting the backlog grow; the node keeps
// serving, its memory stays bounded, a bystander's 1:1 sends keep getting `sent`, and every post
// that got `sent` is in the members' timelines. Default limits throughout.
import test from 'ava';
import { cleanup, readAll, startNode, until } from '../helpers/node.ts';
import { underAttack } from '../helpers/attack.ts';
import { ImError } from '../../src/client/client.ts';
import { GROUP_LIMITS } from '../../src/group-home/groups.ts';
import { copyBytes } from '../../src/groups/limits.ts';

test.after.always(cleanup);

const MEMBERS = 10_000;
const ATTACK_MS = 10_000;
const IN_FLIGHT = 32;

test('a 10,000-member group posted to in a loop: rate_limited instead of a growing backlog, memory bounded, bystander served, every sent post delivered', async (t) => {
  t.timeout(240_000);
  const node = await startNode();
  const { c: owner } = await node.login('boss');
  const members = Array.from({ length: MEMBERS - 1 }, (_, i) => `m${i}`);
  // In parts that fit the default frame limit.
  await owner.group('create', 'big', members.slice(0, 2500));
  for (let i = 2500; i < members.length; i += 2500) await owner.group('add', 'big', members.slice(i, i + 2500));
  t.is((await owner.groupInfo('big')).members.length, MEMBERS);
  const { c: from } = await node.login('by-from');
  const { c: reader } = await node.login('by-to');

  const sent: { cid: string; mid: string }[] = [];
  const refusals = { backlog: 0, rate: 0, connection: 0, other: 0 };
  let unavailable = 0;
  let maxBehind = 0;
  /** Posts the group's home refused for its backlog (a client may see some of them as
   * `unavailable`: a refusal comes back with its batch, which on a busy machine can outlast the
   * router's deadline while the batch's accepted posts fan out). */
  let homeRefused = 0;
  const body = (cid: string) => `post ${cid}`;
  const figures = await underAttack(t, 'group of 10,000 posted to in a loop', {
    target: node, from, to: 'by-to', reader,
    extra: () => ({ posts: sent.length, ...refusals, unavailable, homeRefused, maxFanoutBehind: maxBehind }),
  }, async () => {
    // At least ATTACK_MS, and on a busy machine on until the backlog bound has bitten (a 10,000-member
    // post then takes seconds, and refusals come back with their batch's answer), up to 4 times as long.
    const start = Date.now();
    const going = () => Date.now() - start < ATTACK_MS || (homeRefused === 0 && Date.now() - start < 4 * ATTACK_MS);
    let next = 0;
    const sampler = (async () => {
      while (going()) {
        const v = JSON.parse((await node.get('/cluster')).text) as { groups: { fanoutBehind: number } };
        maxBehind = Math.max(maxBehind, v.groups.fanoutBehind);
        homeRefused = Number(/^im_group_limited_total\{[^}]*reason="backlog"[^}]*\} (\d+)/m.exec((await node.get('/metrics')).text)?.[1] ?? 0);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (going()) {
        const cid = `p${next++}`;
        try {
          sent.push({ cid, mid: (await owner.sendGroup('big', cid, body(cid))).mid });
        } catch (e) {
          if (!(e instanceof ImError)) throw e;
          if (e.code === 'unavailable') unavailable++;
          else if (e.code !== 'rate_limited') refusals.other++;
          else if (/not yet handed to its members/.test(e.message)) refusals.backlog++;
          else if (/messages\/s/.test(e.message)) refusals.rate++;
          else refusals.connection++;
          // A client that ignores the retry time; a short pause keeps this test's own CPU sane.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    }));
    await sampler;
  });

  t.true(sent.length > 0, 'posts went through');
  t.true(homeRefused > 0, `the group's home refused posts past its backlog bound (${JSON.stringify(refusals)}, unavailable ${unavailable})`);
  t.is(refusals.other, 0);
  // The backlog stayed within its bound: bytes of member copies (one message may cross it).
  const perMessage = copyBytes(Buffer.byteLength(body('p00000'))) * MEMBERS;
  const bound = Math.min(GROUP_LIMITS.backlog, Math.ceil(GROUP_LIMITS.backlogBytes / perMessage) + 1);
  t.true(maxBehind <= bound, `at most ${maxBehind} messages behind (bound ${bound})`);
  const metrics = (await node.get('/metrics')).text;
  t.regex(metrics, /^im_group_limited_total\{[^}]*reason="backlog"[^}]*\} [1-9]/m);
  // Each message makes 10,000 timeline rows: SQLite's page cache (64 MiB) fills and V8 grows its
  // heap under that allocation rate, then levels off (about +350 MiB after 40 such messages).
  t.true(figures.rssGrowthMiB < 400, `RSS grew ${figures.rssGrowthMiB} MiB`);
  t.true(figures.bystanderP99 < 5000, `bystander p99 ${figures.bystanderP99} ms`);

  // Every post that got `sent` is in the members' timelines (and the poster's).
  const want = sent.map((s) => s.mid).sort();
  for (const m of ['m0', 'm4999', `m${MEMBERS - 2}`]) {
    const { c } = await node.login(m);
    const have = new Set((await readAll(c)).filter((e) => e.conv === 'g:big').map((e) => e.mid));
    t.deepEqual(want.filter((mid) => !have.has(mid)), [], `every sent post in ${m}'s timeline`);
    c.close();
  }
  await until(async () => {
    const have = new Set((await readAll(owner)).map((e) => e.mid));
    return want.every((mid) => have.has(mid));
  }, 'every sent post in the poster\'s timeline');
  t.log(`posts sent ${sent.length}, refused ${JSON.stringify(refusals)}, unavailable ${unavailable}, max fan-out behind ${maxBehind}`);
});
