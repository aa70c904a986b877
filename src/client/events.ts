// Where the frames a node pushes on the logged-in connection go: timeline entries to the
// timeline, contact, presence and profile changes to the roster, and each to the app as its
// event. Goaway is the session's own (it steers the reconnect).
import type { Roster } from './roster.ts';
import type { Timeline } from './timeline.ts';
import type { SessionEvents } from './types.ts';
import type { PresenceEvent, ServerFrame } from '../protocol/frames.ts';

export type EventSink = {
  timeline: Timeline;
  roster: Roster;
  emit<K extends keyof SessionEvents>(event: K, ...args: SessionEvents[K]): void;
};

export function routeEvent(f: ServerFrame, to: EventSink): void {
  const { timeline, roster } = to;
  switch (f.op) {
    case 'msg': {
      const { op: _op, ...entry } = f;
      return timeline.push(entry);
    }
    case 'presence': {
      if (!('user' in f)) return;
      const p = f as PresenceEvent;
      if (roster.presence(p)) to.emit('contacts', roster.contacts);
      return to.emit('presence', p);
    }
    case 'roster':
      if (!Array.isArray(f.contacts)) return;
      if (roster.page(f)) to.emit('contacts', roster.contacts);
      return to.emit('roster', f);
    case 'contact':
      if (typeof f.user !== 'string') return;
      roster.contact(f);
      to.emit('contacts', roster.contacts);
      return to.emit('contact', f);
    case 'profile':
      if (typeof f.user !== 'string') return;
      roster.profile(f);
      return to.emit('profile', f);
    case 'typing':
      return to.emit('typing', f);
    case 'receipt':
      return to.emit('receipt', f);
    case 'read':
      return to.emit('read', f);
    default:
      to.emit('event', f);
  }
}
