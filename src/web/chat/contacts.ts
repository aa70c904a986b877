// The Contacts tab: ask someone to be a contact, the requests waiting for my answer (accept,
// decline), my friends with their presence dot and status text (remove, block; a click opens the
// conversation), the requests I made (pending; withdraw), others I follow or who follow me, and
// the users I block (unblock). Names are profile names where known; the list is the session's
// roster, kept current by the node's contact and presence events.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { isId } from '../../client/index.ts';
import type { Contact } from '../../client/index.ts';
import type { Store } from './store.ts';
import type { Chat } from './wire.ts';

const value = (e: Event) => (e.target as HTMLInputElement).value;

type Run = (op: () => Promise<string | undefined>) => void;

function AddContact(props: { store: Store; chat: Chat }) {
  const [who, setWho] = useState('');
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    const user = who.trim();
    if (!isId(user)) return setError('A user id is 1 to 64 of A-Z a-z 0-9 _ . @ -');
    setBusy(true);
    const err = await props.chat.requestContact(user, text.trim());
    setBusy(false);
    setError(err ?? '');
    if (!err) {
      setWho('');
      setText('');
    }
  };
  return html`
    <form class="add-contact" onSubmit=${submit}>
      <div class="row">
        <input data-test="contact-add-user" placeholder="Add contact: user id" aria-label="user id to add as a contact"
          value=${who} onInput=${(e: Event) => setWho(value(e))} />
        <button type="submit" data-test="contact-add" disabled=${busy}>Add</button>
      </div>
      <input data-test="contact-add-text" placeholder="message (optional)" aria-label="message with the request" maxlength="280"
        value=${text} onInput=${(e: Event) => setText(value(e))} />
      <p class="error" data-test="contact-add-error" hidden=${!error}>${error}</p>
    </form>`;
}

/** What a contact entry says about the two users, for the entry's second line when not a friend. */
function relation(c: Contact): string {
  if (c.blocked) return 'blocked';
  if (c.state === 'requested') return 'request sent, pending';
  if (c.state === 'pending') return c.text ? `wants to be your contact: “${c.text}”` : 'wants to be your contact';
  const parts = [c.following && 'you follow them', c.follows_me && 'follows you'].filter(Boolean);
  return parts.join(', ');
}

function ContactItem(props: { store: Store; chat: Chat; c: Contact; run: Run }) {
  const { store, chat, c, run } = props;
  const dot = c.blocked ? 'offline' : store.dot(c.user);
  const p = store.presence.get(c.user);
  const name = store.nameOf(c.user);
  const line = c.state === 'friend' && !c.blocked ? (p?.online ? p.text ?? '' : '') : relation(c);
  const button = (test: string, label: string, op: () => Promise<string | undefined>, cls = 'small') =>
    html`<button class=${cls} data-test=${test} onClick=${() => run(op)}>${label}</button>`;
  return html`
    <li class="contact" data-test="contact" data-user=${c.user} data-state=${c.state} data-blocked=${c.blocked ? 'true' : 'false'}
      data-presence=${dot}>
      <button class="contact-open" data-test="contact-open" title=${`chat with ${c.user}`} onClick=${() => chat.openContact(c.user)}>
        <span class=${`dot ${dot}`} data-test="contact-dot" data-presence=${dot} title=${dot}></span>
        <span class="contact-text">
          <span class="contact-name" data-test="contact-name">${name}${name !== c.user && html` <span class="contact-id">${c.user}</span>`}</span>
          <span class="contact-line" data-test=${c.state === 'friend' ? 'contact-status-text' : 'contact-relation'}>${line}</span>
        </span>
      </button>
      <span class="contact-actions">
        ${c.state === 'pending' && !c.blocked && html`
          ${button('contact-accept', 'Accept', () => chat.acceptContact(c.user), 'small')}
          ${button('contact-decline', 'Decline', () => chat.declineContact(c.user), 'small quiet')}`}
        ${c.state === 'requested' && html`<span class="tag" data-test="contact-pending">pending</span>`}
        ${(c.state === 'friend' || c.state === 'requested') && button('contact-remove', c.state === 'friend' ? 'Remove' : 'Withdraw',
          () => chat.removeContact(c.user), 'small quiet')}
        ${c.blocked
          ? button('contact-unblock', 'Unblock', () => chat.unblock(c.user), 'small quiet')
          : button('contact-block', 'Block', () => chat.block(c.user), 'small danger')}
      </span>
    </li>`;
}

function Section(props: { title: string; test: string; store: Store; chat: Chat; list: Contact[]; run: Run }) {
  if (!props.list.length) return null;
  return html`
    <h3 class="contacts-title">${props.title} <span class="count">${props.list.length}</span></h3>
    <ul class="contact-list" data-test=${props.test}>
      ${props.list.map((c) => html`<${ContactItem} key=${c.user} store=${props.store} chat=${props.chat} c=${c} run=${props.run} />`)}
    </ul>`;
}

export function ContactsPanel(props: { store: Store; chat: Chat }) {
  const { store, chat } = props;
  const [error, setError] = useState('');
  const run: Run = (op) => {
    setError('');
    void op().then((err) => setError(err ?? ''));
  };
  const all = [...store.contacts.values()];
  const byName = (a: Contact, b: Contact) => store.nameOf(a.user).localeCompare(store.nameOf(b.user)) || (a.user < b.user ? -1 : 1);
  const of = (f: (c: Contact) => boolean) => all.filter(f).sort(byName);
  const requests = of((c) => !c.blocked && c.state === 'pending');
  const friends = of((c) => !c.blocked && c.state === 'friend');
  const sent = of((c) => !c.blocked && c.state === 'requested');
  const others = of((c) => !c.blocked && c.state === 'none');
  const blocked = of((c) => c.blocked);
  return html`
    <section class="contacts" data-test="contacts" data-loaded=${store.contactsLoaded ? 'true' : 'false'}>
      <${AddContact} store=${store} chat=${chat} />
      <p class="error" data-test="contacts-error" hidden=${!error}>${error}</p>
      <${Section} title="Requests" test="contact-requests" store=${store} chat=${chat} list=${requests} run=${run} />
      <${Section} title="Friends" test="contact-friends" store=${store} chat=${chat} list=${friends} run=${run} />
      <${Section} title="Sent requests" test="contact-sent" store=${store} chat=${chat} list=${sent} run=${run} />
      <${Section} title="Following and followers" test="contact-others" store=${store} chat=${chat} list=${others} run=${run} />
      <${Section} title="Blocked" test="contact-blocked" store=${store} chat=${chat} list=${blocked} run=${run} />
      ${!all.length && html`<p class="empty">${store.contactsLoaded ? 'No contacts yet: add one above.' : 'Loading…'}</p>`}
    </section>`;
}
