// A logout that never reaches the user's home must not keep the user online: each session lives
// only as long as its gateway names its connection in a renewal, so the gateway's renewals for
// its other sessions there do not keep it alive.
import test from 'ava';
import { cleanup, until } from '../helpers/node.ts';
import type { TestNode } from '../helpers/node.ts';
import { startCluster } from '../helpers/cluster.ts';
import { underAttack } from '../helpers/attack.ts';

test.after.always(cleanup);

// Longer than the freeze below (about 3 s for the gateway to give up the link, then the 8 s a
// call keeps retrying): a frozen home that wakes up past it would expire every session at once.
const PRESENCE_TIMEOUT_MS = 20_000;
/** Within the presence timeout, plus one renew period (the home expires sessions on each). */
const BOUND_MS = PRESENCE_TIMEOUT_MS + PRESENCE_TIMEOUT_MS / 3;

test('a home frozen with SIGSTOP while its user logs out shows the user offline within the presence timeout after SIGCONT', async (t) => {
  t.timeout(90_000);
  // A long suspicion window: the frozen home stays a member (no ring change moves the user).
  const cluster = await startCluster(3, ['--presence-timeout', String(PRESENCE_TIMEOUT_MS), '--suspect-after', '60000', '--confirm-timeout', '60000']);
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  const ring = cluster.ring();
  const alice = cluster.nameOn(a, 'frozen-alice');
  // The bystander's users have neither home nor replica on the frozen node.
  const away = (prefix: string) => {
    for (let i = 0; ; i++) if (!ring.owners(`${prefix}${i}`, 2).includes(a.opts.name!)) return `${prefix}${i}`;
  };
  const from = away('sess-from');
  const to = away('sess-to');
  const { c: sender } = await c.login(from, 'by');
  const { c: reader } = await c.login(to, 'by');
  const { c: viewer } = await c.login(away('sess-viewer'));

  // alice's connection is on gateway b, her home is a; b also holds another session homed on a,
  // so b keeps renewing at a throughout.
  const { c: phone } = await b.login(alice, 'phone');
  await b.login(cluster.nameOn(a, 'frozen-other'), 'x');
  await until(async () => (await viewer.presence([alice])).users[alice]?.online === true, 'alice online');
  const aPeer = a.p2p.slice(a.p2p.lastIndexOf('/') + 1);

  let resumed = 0;
  const figures = await underAttack(t, 'lost logout', { target: a, from: sender, to, reader }, async () => {
    const logAt = b.log.length;
    a.proc!.kill('SIGSTOP');
    try {
      // Once b has given up its link to a, nothing b sends can wait in a's socket for SIGCONT.
      await until(() => b.log.slice(logAt).some((l) => l.includes('peer unreachable') && l.includes(aPeer)), "b to give up its link to the frozen home", 30_000, 50);
      phone.close();
      await until(() => b.log.slice(logAt).some((l) => l.includes('logout not delivered')), 'b to give up on the logout', 30_000, 50);
    } finally {
      a.proc!.kill('SIGCONT');
      resumed = Date.now();
    }
  });
  t.true(resumed > 0);
  await until(async () => {
    try {
      return (await viewer.presence([alice])).users[alice]?.online === false;
    } catch {
      return false; // the resumed home may answer unavailable for a moment
    }
  }, 'alice offline within the presence timeout (plus one renew period) after SIGCONT', BOUND_MS, 200);
  const offlineAfterMs = Date.now() - resumed;
  t.log({ offlineAfterMs, presenceTimeoutMs: PRESENCE_TIMEOUT_MS });
  t.true(offlineAfterMs <= BOUND_MS + 1000, `offline after ${offlineAfterMs} ms`);
  t.true(figures.rssGrowthMiB < 100, `RSS growth ${figures.rssGrowthMiB} MiB`);
});
