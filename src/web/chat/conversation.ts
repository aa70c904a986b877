// The right pane: one conversation. Messages in timeline order (older pages load when scrolled to
// the top, keeping what is on screen in place), who is typing, "seen" under my last message, the
// group's members, and the composer (Enter sends, Shift+Enter is a new line).
import { html } from 'htm/preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { convTitle, dotOf } from './store.ts';
import type { Conv, MsgView, Store } from './store.ts';
import type { Chat } from './wire.ts';

const time = (ts: number) => {
  const d = new Date(ts);
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? t : `${d.toLocaleDateString()} ${t}`;
};

function Message(props: { m: MsgView; me: string; seen?: string }) {
  const { m, me } = props;
  const mine = m.from === me;
  return html`
    <div class=${`msg${mine ? ' mine' : ''} ${m.state}`} data-test="message" data-seq=${m.seq ?? ''} data-state=${m.state}
      data-from=${m.from}>
      <div class="meta">
        <span class="from">${mine ? 'you' : m.from}</span>
        <time datetime=${new Date(m.ts).toISOString()}>${time(m.ts)}</time>
        ${m.state === 'pending' && html`<span class="mark" data-test=${m.sendState === 'resending' ? 'resending' : 'sending'}>
          ${m.sendState === 'resending' ? 'resending…' : m.sendState === 'queued' ? 'waiting for connection…' : 'sending…'}</span>`}
      </div>
      <div class="body" data-test="body">${m.body}</div>
      ${m.state === 'failed' && html`<div class="error" data-test="send-error">not sent: ${m.error ?? 'refused'}</div>`}
      ${props.seen && html`<div class="seen" data-test="seen">${props.seen}</div>`}
    </div>`;
}

function GroupPanel(props: { c: Conv; chat: Chat; me: string }) {
  const { c } = props;
  const [user, setUser] = useState('');
  const [error, setError] = useState('');
  const add = async (ev: Event) => {
    ev.preventDefault();
    const err = await props.chat.addMember(c.group!, user.trim());
    setError(err ?? '');
    if (!err) setUser('');
  };
  return html`
    <div class="group-panel">
      <span data-test="group-members" class="members">
        ${c.members ? `members: ${c.members.map((m) => (m === c.owner ? `${m} (owner)` : m)).join(', ')}` : 'members: …'}
      </span>
      ${c.owner === props.me && html`<form class="row" onSubmit=${add}>
        <input data-test="group-add-user" placeholder="add member" aria-label="user id to add" value=${user}
          onInput=${(e: Event) => setUser((e.target as HTMLInputElement).value)} />
        <button type="submit" data-test="group-add-submit">Add</button>
      </form>`}
      <p class="error" data-test="group-error" hidden=${!error}>${error}</p>
    </div>`;
}

function Composer(props: { chat: Chat }) {
  const [text, setText] = useState('');
  const ref = useRef<HTMLTextAreaElement>(null);
  const send = (ev?: Event) => {
    ev?.preventDefault();
    if (!text.trim()) return;
    props.chat.send(text);
    setText('');
    ref.current?.focus();
  };
  const onKey = (ev: KeyboardEvent) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) send(ev);
  };
  const onInput = (ev: Event) => {
    setText((ev.target as HTMLTextAreaElement).value);
    props.chat.typing();
  };
  return html`
    <form class="composer" onSubmit=${send}>
      <textarea ref=${ref} data-test="composer" rows="2" placeholder="Message (Enter sends, Shift+Enter: new line)"
        aria-label="message" value=${text} onInput=${onInput} onKeyDown=${onKey}></textarea>
      <button type="submit" data-test="send">Send</button>
    </form>`;
}

/** Keeps the message list at the bottom while the user is there, and in place when older pages come in. */
function useScroll(el: { current: HTMLDivElement | null }, first: string | undefined, count: number, onTop: () => void) {
  const prev = useRef({ first, height: 0, stick: true });
  useLayoutEffect(() => {
    const d = el.current;
    if (!d) return;
    const p = prev.current;
    if (p.first !== undefined && first !== p.first && d.scrollHeight > p.height && !p.stick) {
      d.scrollTop += d.scrollHeight - p.height; // older messages went in above
    } else if (p.stick) {
      d.scrollTop = d.scrollHeight;
    }
    prev.current = { first, height: d.scrollHeight, stick: p.stick };
    if (d.scrollHeight <= d.clientHeight + 1) onTop(); // nothing to scroll yet: fill the pane
  }, [first, count]);
  return () => {
    const d = el.current;
    if (!d) return;
    prev.current.stick = d.scrollHeight - d.scrollTop - d.clientHeight < 40;
    prev.current.height = d.scrollHeight;
    if (d.scrollTop < 80) onTop();
  };
}

export function ConversationView(props: { store: Store; chat: Chat; c: Conv }) {
  const { store, chat, c } = props;
  const msgs = store.messages(c);
  const list = useRef<HTMLDivElement>(null);
  const onScroll = useScroll(list, msgs[0]?.key, msgs.length, () => chat.loadOlder());
  const typers = store.typers(c.id).filter((u) => u !== store.me);
  const seen = store.seenBy(c);
  const seenText = seen?.users.length ? (c.group !== undefined ? `seen by ${seen.users.join(', ')}` : 'seen') : '';
  const peer = c.peer !== undefined && c.peer !== store.me ? c.peer : undefined;
  const p = peer !== undefined ? store.presence.get(peer) : undefined;
  return html`
    <section class="conversation" data-conv=${c.id} data-test="conversation-view">
      <header class="conv-head">
        <button class="back" onClick=${() => chat.close()} aria-label="back to the list">‹</button>
        <h2 title=${peer ?? ''}>${convTitle(c, store)}</h2>
        ${p !== undefined && html`<span class="status" data-test="peer-status">${dotOf(p)}${p.online && p.text ? `: ${p.text}` : ''}</span>`}
      </header>
      ${c.group !== undefined && html`<${GroupPanel} c=${c} chat=${chat} me=${store.me} />`}
      <div class="messages" ref=${list} onScroll=${onScroll} data-test="messages">
        ${c.more && html`<button class="older" data-test="load-older" disabled=${c.loadingOlder} onClick=${() => chat.loadOlder()}>
          ${c.loadingOlder ? 'loading…' : 'older messages'}</button>`}
        ${c.history === 'loading' && !msgs.length && html`<p class="empty">loading…</p>`}
        ${c.history === 'done' && !msgs.length && html`<p class="empty">No messages yet. Say hello!</p>`}
        ${c.error && html`<p class="error" data-test="conv-error">${c.error}</p>`}
        ${msgs.map((m) => html`<${Message} key=${m.key} m=${m} me=${store.me} seen=${seen && m.mid === seen.mid ? seenText : ''} />`)}
      </div>
      <div class="typing" data-test="typing" hidden=${!typers.length}>
        ${typers.length ? `${typers.join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…` : ''}
      </div>
      <${Composer} key=${c.id} chat=${chat} />
    </section>`;
}
