// Presence registry: sessions per device, replacement, expiry by per-connection renewals,
// watches and last_seen, all on a fake clock.
import test from 'ava';
import { createPresence, PRESENCE_TTL_MS } from '../../src/presence/index.ts';
import type { SessionRef } from '../../src/presence/index.ts';

function setup(ttlMs?: number) {
  const clock = { t: 1_000, now(): number { return this.t; } };
  const presence = createPresence(ttlMs === undefined ? {} : { ttlMs }, { clock });
  return { clock, presence };
}

const s = (user: string, device: string, gateway = 'g1', conn = `${user}-${device}`): SessionRef =>
  ({ user, device, gateway, conn });

test('register brings a user online', (t) => {
  const { presence } = setup();
  t.deepEqual(presence.register(s('alice', 'phone')), { wentOnline: true });
  t.deepEqual(presence.lookup('alice'), { online: true, devices: ['phone'], sessions: [s('alice', 'phone')] });
  t.is(presence.users(), 1);
  t.is(presence.sessionCount(), 1);
});

test('a second device keeps the user online and lists sorted devices', (t) => {
  const { presence } = setup();
  presence.register(s('alice', 'phone'));
  t.deepEqual(presence.register(s('alice', 'laptop', 'g2')), { wentOnline: false });
  const l = presence.lookup('alice');
  t.true(l.online);
  if (l.online) t.deepEqual(l.devices, ['laptop', 'phone']);
  t.is(presence.sessions('alice').length, 2);
  t.is(presence.users(), 1);
  t.is(presence.sessionCount(), 2);
});

test('registering the same device again replaces its session', (t) => {
  const { presence } = setup();
  const old = s('alice', 'phone', 'g1', 'c1');
  const next = s('alice', 'phone', 'g2', 'c7');
  presence.register(old);
  t.deepEqual(presence.register(next), { replaced: old, wentOnline: false });
  t.deepEqual(presence.sessions('alice'), [next]);
  t.is(presence.sessionCount(), 1);
  // the same session again is a renew, not a replacement
  t.deepEqual(presence.register(next), { wentOnline: false });
  t.is(presence.sessionCount(), 1);
});

test('a replaced session unregistering late does not remove its successor', (t) => {
  const { presence } = setup();
  const old = s('alice', 'phone', 'g1', 'c1');
  const next = s('alice', 'phone', 'g1', 'c2');
  presence.register(old);
  presence.register(next);
  t.deepEqual(presence.unregister(old), { wentOffline: false });
  t.deepEqual(presence.sessions('alice'), [next]);
  t.true(presence.lookup('alice').online);
  t.deepEqual(presence.unregister(s('bob', 'phone')), { wentOffline: false });
});

test('unregistering the last device takes the user offline at clock time', (t) => {
  const { clock, presence } = setup();
  presence.register(s('alice', 'phone'));
  presence.register(s('alice', 'laptop'));
  clock.t = 5_000;
  t.deepEqual(presence.unregister(s('alice', 'phone')), { wentOffline: false });
  clock.t = 7_500;
  t.deepEqual(presence.unregister(s('alice', 'laptop')), { wentOffline: true });
  t.deepEqual(presence.lookup('alice'), { online: false, lastSeen: 7_500 });
  t.deepEqual(presence.sessions('alice'), []);
  t.is(presence.users(), 0);
  t.is(presence.sessionCount(), 0);
});

test('renew keeps the named connections alive past the ttl and names those it lacks', (t) => {
  const { clock, presence } = setup();
  presence.register(s('alice', 'phone', 'g1'));
  presence.register(s('bob', 'phone', 'g1'));
  presence.register(s('carol', 'phone', 'g2'));
  for (let i = 0; i < 5; i++) {
    clock.t += PRESENCE_TTL_MS - 1_000;
    t.deepEqual(presence.renew('g1', ['alice-phone', 'bob-phone']), []);
    t.deepEqual(presence.renew('g2', ['carol-phone']), []);
    t.deepEqual(presence.expire(), { expired: [], wentOffline: [] });
  }
  t.deepEqual(presence.renew('nowhere', ['x']), ['x']);
  // A connection of another gateway is not this gateway's to renew.
  t.deepEqual(presence.renew('g1', ['carol-phone']), ['carol-phone']);
  t.is(presence.users(), 3);
});

test('a session its gateway no longer names expires, even while the gateway renews the others', (t) => {
  const { clock, presence } = setup(10_000);
  presence.register(s('alice', 'phone', 'g1'));
  presence.register(s('bob', 'phone', 'g1'));
  // alice logged out at g1, and the logout never reached this home: g1 renews bob only.
  for (let i = 0; i < 4; i++) {
    clock.t += 3_000;
    t.deepEqual(presence.renew('g1', ['bob-phone']), []);
    presence.expire();
  }
  t.deepEqual(presence.lookup('alice'), { online: false, lastSeen: 1_000 });
  t.true(presence.lookup('bob').online);
  t.is(presence.sessionCount(), 1);
});

test('expire drops unrenewed sessions and reports the users that went offline', (t) => {
  const { clock, presence } = setup(10_000);
  presence.register(s('alice', 'phone', 'g1'));
  presence.register(s('alice', 'laptop', 'g2'));
  presence.register(s('bob', 'phone', 'g1'));
  presence.register(s('carol', 'phone', 'g2'));
  clock.t = 1_000 + 10_000;
  t.deepEqual(presence.expire(), { expired: [], wentOffline: [] }); // alive through renew + ttl
  clock.t = 9_000;
  presence.renew('g2', ['alice-laptop', 'carol-phone']);
  clock.t = 12_000;
  const { expired, wentOffline } = presence.expire();
  t.deepEqual(expired.map((x) => `${x.user}/${x.device}`).sort(), ['alice/phone', 'bob/phone']);
  t.deepEqual(wentOffline, ['bob']);
  t.deepEqual(presence.lookup('bob'), { online: false, lastSeen: 1_000 }); // last renew
  t.deepEqual(presence.sessions('alice'), [s('alice', 'laptop', 'g2')]);
  t.is(presence.sessionCount(), 2);
  clock.t = 30_000;
  t.deepEqual(presence.expire().wentOffline.sort(), ['alice', 'carol']);
  t.is(presence.users(), 0);
  t.is(presence.sessionCount(), 0);
  t.deepEqual(presence.renew('g2', ['carol-phone']), ['carol-phone']);
});

test('dropGateway removes its sessions and watches at once', (t) => {
  const { clock, presence } = setup();
  presence.register(s('alice', 'phone', 'g1'));
  presence.register(s('alice', 'laptop', 'g2'));
  presence.register(s('bob', 'phone', 'g1'));
  presence.register(s('bob', 'tablet', 'g1'));
  presence.watch({ gateway: 'g1', conn: 'c1' }, ['carol']);
  presence.watch({ gateway: 'g2', conn: 'c1' }, ['carol']);
  clock.t = 4_000;
  t.deepEqual(presence.dropGateway('g1'), ['bob']);
  t.deepEqual(presence.lookup('bob'), { online: false, lastSeen: 1_000 });
  t.deepEqual(presence.sessions('alice'), [s('alice', 'laptop', 'g2')]);
  t.deepEqual(presence.watchers('carol'), [{ gateway: 'g2', conn: 'c1' }]);
  t.is(presence.sessionCount(), 1);
  t.deepEqual(presence.dropGateway('g1'), []);
});

test('watch, unwatch, unwatchAll and watchers', (t) => {
  const { presence } = setup();
  const a = { gateway: 'g1', conn: 'c1' };
  const b = { gateway: 'g2', conn: 'c1' }; // same conn id on another gateway is another watcher
  presence.watch(a, ['bob', 'carol']);
  presence.watch(a, ['bob']);
  presence.watch(b, ['bob']);
  const byKey = (ws: { gateway: string; conn: string }[]) => ws.map((w) => `${w.gateway}/${w.conn}`).sort();
  t.deepEqual(byKey(presence.watchers('bob')), ['g1/c1', 'g2/c1']);
  t.deepEqual(byKey(presence.watchers('carol')), ['g1/c1']);
  t.deepEqual(presence.watchers('dave'), []);

  presence.unwatch(a, ['bob', 'dave']);
  t.deepEqual(byKey(presence.watchers('bob')), ['g2/c1']);
  presence.unwatchAll(a);
  t.deepEqual(presence.watchers('carol'), []);
  presence.unwatch(b, ['bob']);
  t.deepEqual(presence.watchers('bob'), []);
  presence.unwatchAll({ gateway: 'g9', conn: 'none' });

  // watching again after everything was cleaned starts from scratch
  presence.watch(a, ['carol']);
  t.deepEqual(byKey(presence.watchers('carol')), ['g1/c1']);
  presence.watch(a, []);
  presence.unwatchAll(a);
  t.deepEqual(presence.watchers('carol'), []);
});

test('watchers do not depend on the watched user being online', (t) => {
  const { presence } = setup();
  presence.watch({ gateway: 'g1', conn: 'c1' }, ['bob']);
  presence.register(s('bob', 'phone'));
  presence.unregister(s('bob', 'phone'));
  t.deepEqual(presence.watchers('bob'), [{ gateway: 'g1', conn: 'c1' }]);
});

test('lookup of a never-seen user has no lastSeen; setLastSeen seeds it', (t) => {
  const { clock, presence } = setup();
  t.deepEqual(presence.lookup('zed'), { online: false });
  t.false('lastSeen' in presence.lookup('zed'));
  presence.setLastSeen('zed', 500);
  t.deepEqual(presence.lookup('zed'), { online: false, lastSeen: 500 });
  clock.t = 2_000;
  presence.register(s('zed', 'phone'));
  presence.unregister(s('zed', 'phone'));
  presence.setLastSeen('zed', 600); // a late seed must not move it back
  t.deepEqual(presence.lookup('zed'), { online: false, lastSeen: 2_000 });
});

test('rejects a non-positive ttl', (t) => {
  t.throws(() => setup(0), { instanceOf: RangeError });
});

test('forget drops the sessions and watches of users this home no longer owns, silently', (t) => {
  const clock = { now: () => 1000 };
  const p = createPresence({ ttlMs: 15_000 }, { clock });
  p.register({ user: 'moved', device: 'a', gateway: 'g1', conn: 'c1' });
  p.register({ user: 'kept', device: 'a', gateway: 'g1', conn: 'c2' });
  p.watch({ gateway: 'g2', conn: 'w1' }, ['moved', 'kept']);
  t.is(p.forget((u) => u !== 'moved'), 1);
  t.deepEqual(p.sessions('moved'), []);
  t.false(p.lookup('moved').online);
  t.deepEqual(p.lookup('moved'), { online: false }, 'no last_seen: it did not go offline');
  t.deepEqual(p.watchers('moved'), []);
  t.deepEqual(p.watchers('kept'), [{ gateway: 'g2', conn: 'w1' }]);
  t.is(p.sessions('kept').length, 1);
  t.is(p.sessionCount(), 1);
});
