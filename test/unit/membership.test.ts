// Membership: gossip convergence, suspicion and confirmation through other members, death, leave,
// refutation, restarts and hostile input, with several memberships gossiping in-process on a fake clock.
import test from 'ava';
import { createMembership } from '../../src/membership/index.ts';
import type { GossipEntry, Membership, MembershipEvent, MembershipInit } from '../../src/membership/index.ts';

const SUSPECT = 2_000;
const CONFIRM = 3_000;
const STEP = 250; // one tick and one all-to-all gossip round per step

type Clock = { t: number; now(): number };
type Sim = ReturnType<typeof createSim>;

const info = (name: string, incarnation = 1, peer = `peer-${name}`) =>
  ({ name, peer, addrs: [`/ip4/127.0.0.1/tcp/${name.charCodeAt(0)}`], url: `ws://127.0.0.1/${name}`, incarnation });

function createSim(init: MembershipInit = { suspectAfterMs: SUSPECT, confirmTimeoutMs: CONFIRM }, random?: () => number) {
  const clock: Clock = { t: 1_000, now(): number { return this.t; } };
  const nodes = new Map<string, Membership>();
  const events = new Map<string, MembershipEvent[]>();
  const paused = new Set<string>(); // crashed or stalled: neither ticks, sends nor receives
  const blocked = new Set<string>(); // 'a>b': a's gossip does not reach b

  function start(name: string, incarnation = 1, peer?: string): Membership {
    const m = createMembership(info(name, incarnation, peer), init, random === undefined ? { clock } : { clock, random });
    nodes.set(name, m);
    events.set(name, []);
    paused.delete(name);
    return m;
  }
  const node = (name: string): Membership => {
    const m = nodes.get(name);
    if (m === undefined) throw new Error(`no node ${name}`);
    return m;
  };
  const log = (name: string, evs: MembershipEvent[]): void => { events.get(name)?.push(...evs); };
  // Join through a seed: the newcomer merges the seed's table, then the seed hears the newcomer.
  function join(name: string, seed: string): void {
    log(name, node(name).merge(node(seed).digest(), seed));
    node(name).markJoined();
    log(seed, node(seed).merge(node(name).digest(), name));
  }
  const live = (): string[] => [...nodes.keys()].filter((n) => !paused.has(n)).sort();
  function gossip(): void {
    for (const from of live()) {
      const digest = node(from).digest();
      for (const to of live()) {
        if (to !== from && !blocked.has(`${from}>${to}`)) log(to, node(to).merge(digest, from));
      }
    }
  }
  function step(): void {
    clock.t += STEP;
    for (const n of live()) log(n, node(n).tick());
    gossip();
  }
  function run(ms: number): void {
    for (let done = 0; done < ms; done += STEP) step();
  }
  function cluster(names: string[]): void {
    start(names[0] as string);
    node(names[0] as string).markJoined();
    for (const n of names.slice(1)) {
      start(n);
      join(n, names[0] as string);
    }
    run(1_000);
    for (const n of names) events.set(n, []);
  }
  const cut = (a: string, b: string): void => { blocked.add(`${a}>${b}`); blocked.add(`${b}>${a}`); };
  const stateIn = (observer: string, name: string) => node(observer).members().find((v) => v.name === name)?.state;
  const of = (name: string, type: MembershipEvent['type']) => (events.get(name) ?? []).filter((e) => e.type === type);
  const clear = (): void => { for (const n of nodes.keys()) events.set(n, []); };
  return { clock, nodes, events, paused, blocked, start, node, join, gossip, step, run, cluster, cut, stateIn, of, clear, log };
}

function ringsAgree(sim: Sim, names: string[]): string[] | undefined {
  const rings = names.map((n) => sim.node(n).ringMembers().join());
  return rings.every((r) => r === rings[0]) ? sim.node(names[0] as string).ringMembers() : undefined;
}

const memberName = (e: MembershipEvent): string | undefined => ('member' in e ? e.member.name : undefined);

test('four nodes joining through a seed converge on the same ring', (t) => {
  const sim = createSim();
  const names = ['a', 'b', 'c', 'd'];
  sim.start('a');
  t.deepEqual(sim.node('a').ringMembers(), []);
  t.false(sim.node('a').joined());
  sim.node('a').markJoined();
  t.true(sim.node('a').joined());
  t.deepEqual(sim.node('a').tick(), [{ type: 'ring:changed', members: ['a'] }], 'reported by the next call');
  for (const n of names.slice(1)) {
    sim.start(n);
    sim.join(n, 'a');
  }
  sim.run(1_000);
  t.deepEqual(ringsAgree(sim, names), names);
  for (const n of names) {
    t.true(sim.node(n).joined());
    t.deepEqual(sim.node(n).members().map((v) => `${v.name}:${v.state}`), ['a:up', 'b:up', 'c:up', 'd:up']);
    // every other member announced once, and the ring:changed events end on the agreed ring
    t.deepEqual(sim.of(n, 'member:joined').map(memberName).sort(), names.filter((x) => x !== n));
    const last = sim.of(n, 'ring:changed').at(-1);
    t.deepEqual(last, { type: 'ring:changed', members: names });
  }
  t.is(sim.node('c').peerOf('b'), 'peer-b');
  t.is(sim.node('c').byPeer('peer-d')?.name, 'd');
  t.is(sim.node('c').byPeer('nobody'), undefined);
  t.is(sim.node('c').self().state, 'up');
});

test('ring:changed comes last, and the change markJoined makes comes with the next call', (t) => {
  const sim = createSim();
  sim.start('a');
  sim.node('a').markJoined();
  sim.start('b');
  const evs = sim.node('b').merge(sim.node('a').digest(), 'a');
  t.deepEqual(evs.map((e) => e.type), ['member:joined', 'ring:changed']);
  t.deepEqual(evs.at(-1), { type: 'ring:changed', members: ['a'] });
  sim.node('b').markJoined();
  sim.node('b').markJoined(); // idempotent
  t.deepEqual(sim.node('b').tick(), [{ type: 'ring:changed', members: ['a', 'b'] }]);
  t.deepEqual(sim.node('b').tick(), []);
  // the same with merge as the next call, as when a seed answers the join
  sim.start('c');
  sim.node('c').markJoined();
  t.deepEqual(sim.node('c').merge(sim.node('b').digest(), 'b').map((e) => e.type),
    ['member:joined', 'member:joined', 'ring:changed']);
  t.deepEqual(sim.node('c').ringMembers(), ['a', 'b', 'c']);
});

test('a node that has not joined leaves itself out of its gossip, and is taken in only by its join request', (t) => {
  const sim = createSim();
  const a = sim.start('a');
  a.markJoined();
  const b = sim.start('b');
  a.merge(b.digest(), 'b');
  t.deepEqual(a.ringMembers(), ['a'], 'gossip from a node still copying its data does not put it in the ring');
  t.false(b.digest().some((g) => g.name === 'b'));
  t.deepEqual(a.merge(b.digest({ joining: true }), 'b').map((e) => e.type), ['member:joined', 'ring:changed']);
  t.deepEqual(a.ringMembers(), ['a', 'b']);
});

test('a member is suspected after suspectAfterMs without heartbeat progress, and stays in the ring', (t) => {
  const sim = createSim();
  const a = sim.start('a');
  a.markJoined();
  const b = sim.start('b');
  b.markJoined();
  a.merge(b.digest());
  sim.clock.t += SUSPECT - 1;
  t.deepEqual(a.tick(), []);
  sim.clock.t += 1;
  const evs = a.tick();
  t.deepEqual(evs.map((e) => `${e.type}:${memberName(e)}`), ['member:suspected:b']);
  t.is(sim.stateIn('a', 'b'), 'suspect');
  t.deepEqual(a.ringMembers(), ['a', 'b']);
  // suspect is a local view: the digest still says alive
  t.is(a.digest().find((g) => g.name === 'b')?.status, 'alive');
  // progress refutes it
  b.tick();
  t.deepEqual(a.merge(b.digest()).map((e) => e.type), ['member:recovered']);
  t.is(sim.stateIn('a', 'b'), 'up');
});

test('a member still heard by another member is not suspected by a node that cannot hear it', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  sim.cut('a', 'c'); // a and c cannot talk; both still talk to b
  sim.run(4 * (SUSPECT + CONFIRM));
  for (const n of ['a', 'b', 'c']) {
    t.deepEqual(sim.events.get(n), [], `${n} saw no membership change`);
  }
  t.is(sim.stateIn('a', 'c'), 'up');
  t.is(sim.stateIn('c', 'a'), 'up');
  t.deepEqual(ringsAgree(sim, ['a', 'b', 'c']), ['a', 'b', 'c']);
});

test('a dropped connection suspects at once; progress through another member recovers it', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  sim.cut('a', 'c');
  t.deepEqual(sim.node('a').unreachable('c').map((e) => e.type), ['member:suspected']);
  t.deepEqual(sim.node('a').unreachable('c'), [], 'a second drop does not restart the window');
  sim.run(STEP * 2);
  t.deepEqual(sim.of('a', 'member:recovered').map(memberName), ['c']);
  t.is(sim.stateIn('a', 'c'), 'up');
  t.deepEqual(sim.of('a', 'ring:changed'), []);
});

test('a member stalled for 1 s is not suspected', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c', 'd']);
  sim.paused.add('c');
  sim.run(1_000);
  sim.paused.delete('c');
  sim.run(2 * (SUSPECT + CONFIRM));
  for (const n of ['a', 'b', 'c', 'd']) t.deepEqual(sim.events.get(n), [], n);
  t.deepEqual(ringsAgree(sim, ['a', 'b', 'c', 'd']), ['a', 'b', 'c', 'd']);
});

test('a crashed member is suspected, then declared dead by all within suspectAfter + confirm + a round', (t) => {
  const sim = createSim();
  const alive = ['a', 'b', 'd'];
  sim.cluster(['a', 'b', 'c', 'd']);
  sim.paused.add('c');
  sim.run(SUSPECT - STEP);
  for (const n of alive) t.is(sim.stateIn(n, 'c'), 'up', `${n} does not suspect too early`);
  sim.run(SUSPECT + CONFIRM + 2 * STEP - (SUSPECT - STEP));
  for (const n of alive) {
    t.is(sim.stateIn(n, 'c'), 'dead', n);
    t.deepEqual(sim.of(n, 'member:died').map(memberName), ['c'], `${n}: one died`);
    t.deepEqual(sim.of(n, 'ring:changed'), [{ type: 'ring:changed', members: alive }], `${n}: one ring:changed`);
  }
  t.deepEqual(ringsAgree(sim, alive), alive);
  sim.run(10_000);
  for (const n of alive) t.is(sim.of(n, 'ring:changed').length, 1, `${n}: still one ring:changed`);
});

test('probes ask an up member other than the target and self; the confirm window decides alone', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c', 'd']);
  const a = sim.node('a');
  t.deepEqual(a.probes(), []);
  a.unreachable('c');
  const vias = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const p = a.probes();
    t.is(p.length, 1);
    t.is(p[0]?.target, 'c');
    vias.add(p[0]?.via ?? '');
  }
  t.deepEqual([...vias].sort(), ['b', 'd'], 'round robin over the up members, never a or c');
  t.deepEqual(a.probeResult('c', false), []);
  t.deepEqual(a.probeResult('c', true).map((e) => e.type), ['member:recovered']);

  // with every other member suspect there is nobody to ask; and a node that hears no majority
  // declares nobody dead (it may be the one cut off): they stay suspect, in its ring
  a.unreachable('b');
  a.unreachable('c');
  a.unreachable('d');
  t.deepEqual(a.probes(), []);
  sim.clock.t += CONFIRM;
  t.false(a.hasMajority());
  t.deepEqual(a.tick().map((e) => e.type), []);
  t.deepEqual(a.ringMembers(), ['a', 'b', 'c', 'd']);
});

test('a partition: the majority side declares the others dead, the minority side declares nobody', (t) => {
  const sim = createSim();
  const names = ['a', 'b', 'c', 'd', 'e'];
  sim.cluster(names);
  for (const x of ['a', 'b']) for (const y of ['c', 'd', 'e']) sim.cut(x, y);
  sim.run(SUSPECT + CONFIRM + 4 * STEP);
  for (const n of ['c', 'd', 'e']) {
    t.true(sim.node(n).hasMajority());
    t.deepEqual(sim.node(n).ringMembers(), ['c', 'd', 'e']);
  }
  for (const n of ['a', 'b']) {
    t.false(sim.node(n).hasMajority());
    t.deepEqual(sim.of(n, 'member:died'), [], `${n} declared nobody dead`);
    t.deepEqual(sim.node(n).ringMembers(), names, 'its ring still names the others, so it cannot confirm their writes');
  }
});

test('the write lease: lost on the minority side well before the majority declares it dead, kept on the majority side', (t) => {
  const sim = createSim();
  const names = ['a', 'b', 'c', 'd', 'e'];
  sim.cluster(names);
  t.true(names.every((n) => sim.node(n).lease()), 'every member of a healthy cluster holds the lease');
  const cutAt = sim.clock.t;
  for (const x of ['a', 'b']) for (const y of ['c', 'd', 'e']) sim.cut(x, y);
  let lostAt: number | undefined;
  let diedAt: number | undefined;
  for (let i = 0; i < 40 && diedAt === undefined; i++) {
    sim.step();
    if (lostAt === undefined && !sim.node('a').lease() && !sim.node('b').lease()) lostAt = sim.clock.t;
    if (['c', 'd', 'e'].some((n) => sim.of(n, 'member:died').length > 0)) diedAt = sim.clock.t;
    t.true(['c', 'd', 'e'].every((n) => sim.node(n).lease()), 'the majority keeps its lease throughout');
  }
  t.truthy(lostAt, 'the minority lost its lease');
  t.truthy(diedAt, 'the majority declared the minority dead');
  t.true(diedAt! - lostAt! >= CONFIRM / 3, `lease lost ${lostAt! - cutAt} ms after the cut, first death declared ${diedAt! - cutAt} ms after`);
  // Healed: the minority hears the majority again (and learns it was declared dead: it must rejoin).
  sim.blocked.clear();
  sim.run(2 * STEP);
  t.false(sim.node('a').lease(), 'a node declared dead holds no lease until it has rejoined');
});

test('a frozen node reads the gossip that piled up while it slept: that does not give it the lease back before it learns it was declared dead', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  t.true(sim.node('a').lease());
  sim.paused.add('a'); // SIGSTOP: the others' gossip waits in its sockets
  const piled = new Map<string, GossipEntry[]>();
  for (let i = 0; i < 40 && sim.of('b', 'member:died').length === 0; i++) {
    sim.step();
    for (const n of ['b', 'c']) {
      const d = sim.node(n).digest();
      // The last frames sent before the verdict still hold a alive (a suspect is gossiped as alive).
      if (d.find((e) => e.name === 'a')?.status === 'alive') piled.set(n, d);
    }
  }
  t.is(sim.stateIn('b', 'a'), 'dead', 'the others declared the frozen node dead');
  t.is(piled.size, 2);
  // SIGCONT: the piled-up frames are read before any timer of a runs.
  sim.paused.delete('a');
  for (const [from, d] of piled) sim.log('a', sim.node('a').merge(d, from));
  t.true(sim.node('a').joined(), 'nothing it read says it was declared dead');
  t.false(sim.node('a').lease(), 'frames written while it slept are no evidence that the others still hold it alive');
  sim.run(2 * STEP);
  t.is(sim.of('a', 'self:dead').length, 1, 'the next round tells it the verdict');
  t.false(sim.node('a').lease());
});

test('a member vouches for this node with the heartbeat it gossips back, or a ping it answered, dated when this node sent it', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  sim.paused.add('b');
  sim.paused.add('c');
  sim.run(4 * STEP);
  t.true(sim.node('a').lease(), 'held for a while after the last echo');
  sim.run(12 * STEP);
  t.false(sim.node('a').lease(), 'lost once the newest echo is older than the window');
  // b answers a ping sent now: it vouches as of the sending.
  sim.node('a').vouched('b', sim.node('a').now());
  t.true(sim.node('a').lease(), 'a majority of three: a and b');
  // A gossip that echoes a heartbeat a never issued (or one long forgotten) vouches for nothing.
  sim.clock.t += 10_000;
  const forged = sim.node('c').digest().map((e) => (e.name === 'a' ? { ...e, heartbeat: e.heartbeat + 1_000 } : e));
  sim.node('a').merge(forged, 'c');
  t.false(sim.node('a').lease());
});

test('members invented in gossip, never heard directly, do not vote: the majority and the lease hold', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  const fakes = ['f1', 'f2', 'f3', 'f4'].map((name) => ({ ...info(name, 5, `peer-${name}`), heartbeat: 1, status: 'alive' as const }));
  sim.log('a', sim.node('a').merge(fakes, 'b'));
  t.deepEqual(sim.node('a').members().filter((m) => m.name.startsWith('f')).map((m) => m.state), ['up', 'up', 'up', 'up']);
  sim.paused.add('b'); // only a and c go on; the fakes never speak
  for (let i = 0; i < 8; i++) {
    sim.step();
    t.true(sim.node('a').lease(), `a keeps its lease at step ${i}`);
  }
  sim.run(SUSPECT + CONFIRM + 4 * STEP);
  t.true(sim.node('a').hasMajority(), 'a and c are two of the three members that ever spoke');
  t.deepEqual(sim.of('a', 'member:died').map(memberName).sort(), ['b', 'f1', 'f2', 'f3', 'f4'], 'so it can still declare the silent ones dead');
});

test('members coming back one by one after a long silence: the last is not declared dead at once', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c', 'd']);
  const a = sim.node('a');
  for (const n of ['b', 'c', 'd']) sim.paused.add(n);
  sim.run(SUSPECT + CONFIRM + 10 * STEP); // long past the confirm window, without a majority
  t.false(a.hasMajority());
  t.deepEqual(sim.of('a', 'member:died'), []);
  // b and c resume; d's first gossip is a little later
  sim.paused.delete('b');
  sim.paused.delete('c');
  for (const n of ['b', 'c']) {
    sim.node(n).tick();
    a.merge(sim.node(n).digest(), n);
  }
  sim.clear();
  sim.blocked.add('d>a');
  sim.paused.delete('d');
  sim.run(CONFIRM - 2 * STEP);
  t.true(a.hasMajority());
  t.deepEqual(sim.of('a', 'member:died'), [], 'd gets a full confirm window from the moment the majority is back');
  sim.blocked.delete('d>a');
  sim.run(2 * STEP);
  t.is(sim.stateIn('a', 'd'), 'up');
  t.deepEqual(sim.of('a', 'member:died'), []);
});

test('a member that left gracefully no longer counts towards the majority', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c', 'd']);
  sim.log('d', sim.node('d').leave());
  sim.run(STEP);
  sim.paused.add('d'); // it exits
  sim.run(SUSPECT + CONFIRM + 2 * STEP);
  t.is(sim.stateIn('a', 'd'), 'dead');
  // c crashes: a and b are 2 of the 3 members that did not leave, a majority
  sim.paused.add('c');
  sim.run(SUSPECT + CONFIRM + 4 * STEP);
  t.is(sim.stateIn('a', 'c'), 'dead');
  t.deepEqual(sim.node('a').ringMembers(), ['a', 'b']);
  t.deepEqual(ringsAgree(sim, ['a', 'b']), ['a', 'b']);
});

test('probes with an injected random pick a valid via, even from a misbehaving random', (t) => {
  for (const r of [0, 0.5, 0.999, 1, -3, Number.NaN]) {
    const sim = createSim(undefined, () => r);
    sim.cluster(['a', 'b', 'c', 'd']);
    sim.node('a').unreachable('b');
    const p = sim.node('a').probes();
    t.is(p.length, 1);
    t.true(p[0]?.via === 'c' || p[0]?.via === 'd', `random ${r} → ${p[0]?.via}`);
  }
});

test('heard() and a frame from a member recover a suspect; self is never suspected', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b']);
  const a = sim.node('a');
  t.deepEqual(a.unreachable('a'), []);
  t.deepEqual(a.heard('nobody'), []);
  t.deepEqual(a.unreachable('b').map((e) => e.type), ['member:suspected']);
  sim.clock.t += 10;
  t.deepEqual(a.heard('b').map((e) => e.type), ['member:recovered']);
  t.is(a.members().find((v) => v.name === 'b')?.lastHeardAt, sim.clock.t);
  // direct evidence holds suspicion off even without heartbeat progress
  sim.clock.t += SUSPECT - 1;
  t.deepEqual(a.tick(), []);
  a.unreachable('b');
  t.deepEqual(a.merge([], 'b').map((e) => e.type), ['member:recovered']);
  sim.clock.t += 100 * SUSPECT;
  t.false(a.tick().some((e) => memberName(e) === 'a'));
  t.is(a.self().state, 'up');
});

test('dead at the same incarnation never comes back; a restart with a higher incarnation rejoins', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  const oldC = sim.node('c');
  sim.paused.add('c');
  sim.run(SUSPECT + CONFIRM + 2 * STEP);
  t.is(sim.stateIn('a', 'c'), 'dead');
  sim.clear();
  // a lagging copy of the old c, still alive and ticking, cannot revive it
  for (let i = 0; i < 5; i++) oldC.tick();
  t.deepEqual(sim.node('a').merge(oldC.digest(), 'c'), []);
  t.deepEqual(sim.node('a').heard('c'), []);
  t.is(sim.stateIn('a', 'c'), 'dead');

  const c = sim.start('c', 2, 'peer-c2'); // restarted with a new identity
  sim.join('c', 'a');
  sim.run(1_000);
  for (const n of ['a', 'b']) {
    t.deepEqual(sim.of(n, 'member:joined').map(memberName), ['c'], n);
    t.deepEqual(sim.of(n, 'ring:changed'), [{ type: 'ring:changed', members: ['a', 'b', 'c'] }], n);
    t.is(sim.node(n).peerOf('c'), 'peer-c2');
    t.is(sim.node(n).byPeer('peer-c2')?.incarnation, 2);
  }
  t.deepEqual(ringsAgree(sim, ['a', 'b', 'c']), ['a', 'b', 'c']);
  t.is(c.self().incarnation, 2);
});

test('same name, different peer: only a higher incarnation replaces the entry', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b']);
  const a = sim.node('a');
  const b = a.digest().find((g) => g.name === 'b') as GossipEntry;
  t.deepEqual(a.merge([{ ...b, peer: 'impostor', heartbeat: b.heartbeat + 1 }]), []);
  t.is(a.peerOf('b'), 'peer-b');
  t.deepEqual(a.merge([{ ...b, peer: 'peer-b2', incarnation: b.incarnation + 1 }]).map((e) => e.type), ['member:joined']);
  t.is(a.peerOf('b'), 'peer-b2');
  t.deepEqual(a.merge([{ ...b, status: 'dead' }]), [], 'a lower incarnation is ignored');
});

test('leave(): others see leaving and it leaves every ring', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  const b = sim.node('b');
  const evs = b.leave();
  t.deepEqual(evs.map((e) => e.type), ['member:left', 'ring:changed']);
  t.is(b.self().state, 'leaving');
  t.is(b.self().incarnation, 2);
  t.deepEqual(b.ringMembers(), ['a', 'c']);
  t.deepEqual(b.leave(), []);
  sim.run(STEP);
  for (const n of ['a', 'c']) {
    t.is(sim.stateIn(n, 'b'), 'leaving');
    t.deepEqual(sim.of(n, 'member:left').map(memberName), ['b']);
    t.deepEqual(sim.of(n, 'ring:changed'), [{ type: 'ring:changed', members: ['a', 'c'] }]);
  }
  // while it hands off it keeps ticking and is not declared dead; once it exits it is
  sim.run(3 * (SUSPECT + CONFIRM));
  t.is(sim.stateIn('a', 'b'), 'leaving');
  sim.paused.add('b');
  sim.run(SUSPECT + CONFIRM + STEP);
  t.is(sim.stateIn('a', 'b'), 'dead');
  t.deepEqual(sim.of('a', 'ring:changed').length, 1);
});

test('refutation: a node told it is dead stops being joined and comes back only through its join request', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b', 'c']);
  const c = sim.node('c');
  const rumour = c.digest().filter((g) => g.name === 'c').map((g) => ({ ...g, status: 'dead' }));
  // a believes the rumour first (as if it had declared c dead itself)
  t.deepEqual(sim.node('a').merge(rumour).map((e) => e.type), ['member:died', 'ring:changed']);
  t.deepEqual(c.merge(rumour).map((e) => e.type), ['self:dead', 'ring:changed']);
  t.is(c.self().incarnation, 2);
  t.false(c.joined());
  t.deepEqual(c.ringMembers(), ['a', 'b'], 'c no longer counts itself as a home');
  sim.run(STEP * 4);
  t.deepEqual(sim.of('a', 'member:joined').map(memberName), [], 'its gossip alone does not bring it back');
  t.is(sim.stateIn('a', 'c'), 'dead');
  // The glue copies c's data, then sends the join request.
  t.deepEqual(sim.node('a').merge(c.digest({ joining: true }), 'c').map((e) => e.type), ['member:joined', 'ring:changed']);
  c.markJoined();
  sim.run(STEP);
  t.is(sim.stateIn('b', 'c'), 'up');
  t.deepEqual(ringsAgree(sim, ['a', 'b', 'c']), ['a', 'b', 'c']);
  // a leaving claim (stale gossip) is refuted in place, and a claim at a higher incarnation is outbid
  t.deepEqual(c.merge([{ ...rumour[0] as GossipEntry, status: 'leaving', incarnation: 7 }]), []);
  t.is(c.self().incarnation, 8);
  t.true(c.joined());
});

test('deadClaim: gossip from a member held dead (or forgotten) is answered with the verdict', (t) => {
  const sim = createSim({ suspectAfterMs: SUSPECT, confirmTimeoutMs: CONFIRM, forgetDeadAfterMs: 10_000 });
  sim.cluster(['a', 'b', 'c']);
  const c = sim.node('c');
  const a = sim.node('a');
  t.is(a.deadClaim(c.digest(), 'peer-c'), undefined, 'alive: nothing to say');
  sim.paused.add('c');
  sim.run(SUSPECT + CONFIRM + 2 * STEP);
  t.is(sim.stateIn('a', 'c'), 'dead');
  // c wakes up still believing it is a member, and gossips.
  const claim = a.deadClaim(c.digest(), 'peer-c');
  t.like(claim, { name: 'c', status: 'dead', incarnation: 1 });
  t.is(a.deadClaim(c.digest(), 'peer-b'), undefined, 'only about the sender itself');
  t.deepEqual(c.merge([claim]).map((e) => e.type), ['self:dead', 'ring:changed']);
  // After a forgets c, the tombstone still answers.
  sim.run(12_000);
  t.false(a.members().some((m) => m.name === 'c'));
  const old = { ...c.digest({ joining: true }).find((g) => g.name === 'c')!, incarnation: 1 };
  t.like(a.deadClaim([old], 'peer-c'), { name: 'c', status: 'dead' });
  t.is(a.deadClaim('junk', 'peer-c'), undefined);
});

test('malformed merge input is ignored and counted, never thrown', (t) => {
  const sim = createSim();
  sim.cluster(['a', 'b']);
  const a = sim.node('a');
  const before = JSON.stringify(a.members());
  const good = a.digest().find((g) => g.name === 'b') as GossipEntry;
  const { name: _name, ...noName } = good;
  const hostile = {};
  Object.defineProperty(hostile, 'name', { get() { throw new Error('boom'); }, enumerable: true });
  const bad: unknown[] = [
    null, 'x', 42, {}, [], noName, hostile,
    { ...good, name: 'x', heartbeat: '3' },
    { ...good, name: 'x', incarnation: -1 },
    { ...good, name: 'x', incarnation: 1.5 },
    { ...good, name: 'x', incarnation: 1e308 },
    { ...good, name: 'x', heartbeat: Number.MAX_SAFE_INTEGER + 2 },
    { ...good, name: 'x', heartbeat: Number.NaN },
    { ...good, name: 'x', status: 'suspect' },
    { ...good, name: '' },
    { ...good, name: 'x', peer: 7 },
    { ...good, name: 'x', addrs: 'not-a-list' },
    { ...good, name: 'x', addrs: [1] },
    { ...good, name: 'x', url: null },
    { ...good, name: 'x'.repeat(100_000) },
  ];
  for (const input of [null, undefined, 'digest', 42, { entries: [] }, bad]) {
    t.notThrows(() => t.deepEqual(a.merge(input, 'nobody'), []));
  }
  t.is(a.malformed(), 5 + bad.length);
  t.is(JSON.stringify(a.members()), before);
  // valid entries next to bad ones still count
  const evs = a.merge([null, { ...good, name: 'e', peer: 'peer-e' }, 'junk']);
  t.deepEqual(evs.map((e) => e.type), ['member:joined', 'ring:changed']);
  t.is(a.malformed(), 7 + bad.length);
  // a flood is cut at the cap
  const flood = Array.from({ length: 2_000 }, (_, i) => ({ ...good, name: `f${i}`, peer: `p${i}` }));
  a.merge(flood);
  t.is(a.members().length, 3 + 1_024);
  t.is(a.malformed(), 7 + bad.length + 2_000 - 1_024);
});

test('dead entries are forgotten after forgetDeadAfterMs and stale gossip does not revive them', (t) => {
  const sim = createSim({ suspectAfterMs: SUSPECT, confirmTimeoutMs: CONFIRM, forgetDeadAfterMs: 10_000 });
  sim.cluster(['a', 'b', 'c']);
  const staleC = sim.node('c').digest();
  sim.paused.add('c');
  sim.run(SUSPECT + CONFIRM + 2 * STEP);
  t.is(sim.stateIn('a', 'c'), 'dead');
  t.true(sim.node('a').digest().some((g) => g.name === 'c' && g.status === 'dead'));
  sim.run(10_000 + STEP);
  for (const n of ['a', 'b']) {
    t.deepEqual(sim.node(n).members().map((v) => v.name), ['a', 'b'], n);
    t.is(sim.node(n).peerOf('c'), undefined);
  }
  t.deepEqual(sim.node('a').merge(staleC), []);
  t.deepEqual(sim.node('a').members().map((v) => v.name), ['a', 'b']);
  t.deepEqual(sim.node('a').merge(staleC.filter((g) => g.name === 'c').map((g) => ({ ...g, incarnation: 5 }))).map((e) => `${e.type}:${memberName(e) ?? ''}`),
    ['member:joined:c', 'ring:changed:']);
});

test('settings are checked', (t) => {
  const clock = { now: (): number => 0 };
  t.throws(() => createMembership(info('a'), { suspectAfterMs: 0 }, { clock }), { instanceOf: RangeError });
  t.throws(() => createMembership(info('a'), { confirmTimeoutMs: Number.NaN }, { clock }), { instanceOf: RangeError });
  t.throws(() => createMembership(info('a', -1), {}, { clock }), { instanceOf: RangeError });
  t.notThrows(() => createMembership(info('a'), {}, { clock }));
});
