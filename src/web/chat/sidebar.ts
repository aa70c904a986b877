// The left pane: my name and status on top, then two tabs. Chats: start a 1:1 chat (or open a
// group by `#id`), create a group, and the list of conversations, the most recently active first,
// each with its last message, unread count and, for a 1:1, the other user's presence. Contacts
// (contacts.ts), with a badge counting the requests waiting for an answer.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { dmConv, isId } from '../../client/index.ts';
import { ContactsPanel } from './contacts.ts';
import { MePanel } from './me.ts';
import { convTitle } from './store.ts';
import type { Conv, Store } from './store.ts';
import type { Chat } from './wire.ts';

const ID_HINT = 'Ids are 1 to 64 of A-Z a-z 0-9 _ . @ -';
const value = (e: Event) => (e.target as HTMLInputElement).value;

function NewChat(props: { store: Store; chat: Chat }) {
  const [who, setWho] = useState('');
  const [error, setError] = useState('');
  const submit = (ev: Event) => {
    ev.preventDefault();
    const v = who.trim();
    const group = v.startsWith('#') ? v.slice(1) : undefined;
    if (!isId(group ?? v)) return setError(ID_HINT);
    setError('');
    setWho('');
    props.chat.open(group !== undefined ? `g:${group}` : dmConv(props.store.me, v));
  };
  return html`
    <form class="row" onSubmit=${submit}>
      <input data-test="new-chat-user" placeholder="Chat with user id (or #group)" aria-label="user id to chat with"
        value=${who} onInput=${(e: Event) => setWho(value(e))} />
      <button type="submit" data-test="new-chat">Chat</button>
    </form>
    <p class="error" data-test="new-chat-error" hidden=${!error}>${error}</p>`;
}

function NewGroup(props: { chat: Chat }) {
  const [group, setGroup] = useState('');
  const [members, setMembers] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    const list = members.split(',').map((m) => m.trim()).filter(Boolean);
    const err = await props.chat.createGroup(group.trim(), list);
    setBusy(false);
    setError(err ?? '');
    if (!err) {
      setGroup('');
      setMembers('');
    }
  };
  return html`
    <details class="new-group">
      <summary>New group</summary>
      <form onSubmit=${submit}>
        <input data-test="new-group" placeholder="group id" aria-label="group id" value=${group}
          onInput=${(e: Event) => setGroup(value(e))} />
        <input data-test="new-group-members" placeholder="members: bob, carol" aria-label="members, comma-separated"
          value=${members} onInput=${(e: Event) => setMembers(value(e))} />
        <button type="submit" data-test="new-group-submit" disabled=${busy}>Create group</button>
        <p class="error" data-test="new-group-error" hidden=${!error}>${error}</p>
      </form>
    </details>`;
}

function ConvItem(props: { store: Store; chat: Chat; c: Conv }) {
  const { store, c } = props;
  const last = store.last(c);
  const dot = c.peer === undefined || c.peer === store.me ? '' : store.dot(c.peer);
  const online = dot === '' ? '' : dot === 'offline' ? 'offline' : 'online';
  return html`
    <li>
      <button class=${`conv-item${store.open === c.id ? ' active' : ''}`} data-test="conversation" data-conv=${c.id}
        onClick=${() => props.chat.open(c.id)}>
        <span class=${`dot ${dot}`} data-test="presence" data-online=${online} data-presence=${dot} title=${dot}></span>
        <span class="conv-text">
          <span class="conv-name" title=${c.peer ?? ''}>${convTitle(c, store)}</span>
          <span class="conv-last" data-test="last">${last ? `${last.from === store.me ? 'you: ' : c.group !== undefined ? `${last.from}: ` : ''}${last.body}` : 'no messages yet'}</span>
        </span>
        <span class="badge" data-test="unread" hidden=${!c.unread}>${c.unread}</span>
      </button>
    </li>`;
}

function Tabs(props: { store: Store }) {
  const { store } = props;
  const requests = store.incoming();
  const tab = (name: Store['tab']) => () => {
    store.tab = name;
    store.changed();
  };
  return html`
    <div class="tabs" role="tablist">
      <button role="tab" class=${store.tab === 'chats' ? 'active' : ''} aria-selected=${store.tab === 'chats'} data-test="tab-chats"
        onClick=${tab('chats')}>Chats</button>
      <button role="tab" class=${store.tab === 'contacts' ? 'active' : ''} aria-selected=${store.tab === 'contacts'} data-test="tab-contacts"
        onClick=${tab('contacts')}>
        Contacts <span class="badge" data-test="requests-badge" hidden=${!requests} title="requests waiting for you">${requests}</span>
      </button>
    </div>`;
}

export function Sidebar(props: { store: Store; chat: Chat }) {
  const { store } = props;
  const convs = store.sorted();
  return html`
    <aside class="sidebar">
      <${MePanel} store=${store} chat=${props.chat} />
      <${Tabs} store=${store} />
      ${store.tab === 'contacts' ? html`<${ContactsPanel} store=${store} chat=${props.chat} />` : html`
        <${NewChat} store=${store} chat=${props.chat} />
        <${NewGroup} chat=${props.chat} />
        <ul class="conv-list" data-test="conversations" data-loaded=${store.loaded ? 'true' : 'false'}>
          ${convs.map((c) => html`<${ConvItem} key=${c.id} store=${store} chat=${props.chat} c=${c} />`)}
        </ul>
        ${!convs.length && html`<p class="empty">${store.loaded ? 'No conversations yet: start one above.' : 'Loading…'}</p>`}`}
    </aside>`;
}
