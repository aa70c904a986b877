// The SDK's auto-away: src/client/away.ts alone with a fake clock and a fake node status (the
// timers are real and short; the clock decides what counts as idle, so a slow machine cannot
// make the user look idle or active), then an ImSession with idleAwayMs against a fake node.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { Away } from '../../src/client/away.ts';
import { ImSession } from '../../src/client/index.ts';
import type { StatusValue } from '../../src/client/index.ts';
import { fakeNode, until } from '../helpers/fake-node.ts';

const IDLE = 20;

/** An Away over a fake clock and a node status that the test can change behind its back. */
function setup(t: ExecutionContext, start: { status: StatusValue; text?: string } | undefined) {
  let clock = 1000;
  let node = start;
  const sets: string[] = [];
  const changes: string[] = [];
  let asked = 0;
  let hold: Promise<void> | undefined;
  const away = new Away(IDLE, {
    now: () => clock,
    current: async () => {
      asked++;
      await hold;
      return node;
    },
    set: async (status, text) => {
      sets.push(`${status}${text ? `:${text}` : ''}`);
      node = { status, ...(text ? { text } : {}) };
    },
    changed: (status) => changes.push(status),
  });
  t.teardown(() => void away.stop()); // a timer left running would keep the test process alive
  return {
    away, sets, changes,
    get asked() { return asked; },
    advance: (ms: number) => { clock += ms; },
    setNode: (s: typeof node) => { node = s; },
    hold: (p: Promise<void> | undefined) => { hold = p; },
  };
}
const tick = (ms = IDLE * 3) => new Promise((r) => setTimeout(r, ms));

test('idle while available: away (keeping the text); the next activity: available again', async (t) => {
  const s = setup(t, { status: 'available', text: 'wfh' });
  s.advance(IDLE);
  await until(() => s.away.away, 'away');
  t.deepEqual(s.sets, ['away:wfh']);
  t.deepEqual(s.changes, ['away']);
  s.away.activity();
  await until(() => !s.away.away && s.sets.length === 2, 'back');
  t.deepEqual(s.sets, ['away:wfh', 'available:wfh']);
  t.deepEqual(s.changes, ['away', 'available']);
  // And it goes away again after the next idle period.
  s.advance(IDLE);
  await until(() => s.sets.length === 3, 'away again');
  t.is(s.sets[2], 'away:wfh');
});

test('activity keeps the user available however slowly the timers run', async (t) => {
  const s = setup(t, { status: 'available' });
  for (let i = 0; i < 10; i++) {
    s.advance(IDLE - 1);
    s.away.activity();
    await tick(IDLE / 2);
  }
  await tick();
  t.deepEqual(s.sets, []);
  t.is(s.asked, 0, 'the node is not even asked while the user is active');
});

test('busy, invisible or unknown status is left alone, and a later activity does not set available', async (t) => {
  for (const status of [{ status: 'busy' as const }, { status: 'invisible' as const }, undefined]) {
    const s = setup(t, status);
    s.advance(IDLE);
    await until(() => s.asked === 1, 'the status to be asked');
    await tick();
    s.away.activity();
    await tick();
    t.deepEqual(s.sets, [], String(status?.status));
  }
});

test('an away not set here is not undone; a status the app sets takes over an away set here', async (t) => {
  const s = setup(t, { status: 'away' });
  s.advance(IDLE);
  await until(() => s.asked === 1, 'the status to be asked');
  s.away.activity();
  await tick();
  t.deepEqual(s.sets, [], 'someone else\'s away stays');

  const u = setup(t, { status: 'available' });
  u.advance(IDLE);
  await until(() => u.away.away, 'away');
  u.away.statusSet(); // the app set, say, busy
  u.setNode({ status: 'busy' });
  u.away.activity();
  await tick();
  t.deepEqual(u.sets, ['away'], 'no available over the app\'s choice');
});

test('activity while the node is being asked cancels the away', async (t) => {
  const s = setup(t, { status: 'available' });
  let release!: () => void;
  s.hold(new Promise<void>((r) => (release = r)));
  s.advance(IDLE);
  await until(() => s.asked === 1, 'the status to be asked');
  s.away.activity();
  release();
  await tick();
  t.deepEqual(s.sets, []);
  t.false(s.away.away);
});

test('a session with idleAwayMs goes away, tells the app, comes back, and undoes its away when closed', async (t) => {
  let status: { status?: StatusValue; text?: string } = {};
  const n = fakeNode((f) => {
    switch (f.op) {
      case 'login': return [{ op: 'welcome', id: f.id, user: 'alice', device: 'd', node: 'n1', seq: 0, acked: 0 }];
      case 'presence': return [{ op: 'presence', id: f.id, users: { alice: { online: true, devices: ['d'], ...status } } }];
      case 'status':
        status = { status: f.status as StatusValue, ...(f.text ? { text: f.text as string } : {}) };
        return f.id !== undefined ? [{ op: 'ok', id: f.id }] : undefined;
      case 'ping': return [{ op: 'pong', id: f.id, ts: 1 }];
      default: return f.id !== undefined ? [{ op: 'ok', id: f.id }] : undefined;
    }
  });
  const s = new ImSession({ urls: ['ws://fake/ws'], user: 'alice', WebSocket: n.WebSocket, idleAwayMs: 60 });
  const told: string[] = [];
  s.on('status', (e) => told.push(`${e.status}${e.auto ? ' (auto)' : ''}`));
  await s.ready();
  await until(() => s.autoAway, 'auto-away', 5000);
  t.deepEqual(status, { status: 'away' });
  s.activity();
  await until(() => !s.autoAway && status.status === 'available', 'available again');
  t.deepEqual(told, ['away (auto)', 'available (auto)']);

  await s.status('busy', 'call');
  t.deepEqual(told.at(-1), 'busy');
  await new Promise((r) => setTimeout(r, 200));
  t.false(s.autoAway, 'busy is not turned into away');
  await s.status('available');
  await until(() => s.autoAway, 'auto-away again', 5000);
  s.close();
  await until(() => n.sent('status').length === 6, 'the status sent on close');
  t.deepEqual(n.sent('status').map((f) => f.status), ['away', 'available', 'busy', 'available', 'away', 'available']);
});
