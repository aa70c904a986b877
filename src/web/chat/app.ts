// The page: the development-mode banner, the login screen or the two panes, and the connection
// bar that says what the session is doing (connecting, replaying, live on which node, reconnecting).
import { html } from 'htm/preact';
import { useLayoutEffect, useState } from 'preact/hooks';
import { ConversationView } from './conversation.ts';
import { LoginView } from './login.ts';
import type { LoginRequest } from './login.ts';
import { Sidebar } from './sidebar.ts';
import type { Store } from './store.ts';
import type { Chat } from './wire.ts';

export type Actions = {
  login(l: LoginRequest): void;
  logout(): void;
  /** Starts over as a new device of the same user (after another tab took this one's device over). */
  reconnect(): void;
  chat(): Chat | undefined;
};

function useStore(store: Store): void {
  const [, setTick] = useState(0);
  // A layout effect runs inside the first render, before boot() can change the store: a plain
  // effect waits for the next frame, and on a busy machine the node's /healthz answered first,
  // its change was lost and the page stayed on "Loading…". The tick catches anything earlier.
  useLayoutEffect(() => {
    const off = store.subscribe(() => setTick((n) => n + 1));
    setTick((n) => n + 1);
    return off;
  }, [store]);
}

function connText(store: Store): string {
  const c = store.conn;
  switch (c.state) {
    case 'connecting': return c.attempt ? `connecting (attempt ${c.attempt + 1})…` : 'connecting…';
    case 'replaying': return 'replaying missed messages…';
    case 'live': return `connected to ${c.node ?? 'a node'}`;
    case 'reconnecting': return `reconnecting (attempt ${c.attempt + 1})…${c.reason ? ` ${c.reason}` : ''}`;
    case 'closed': return `disconnected: ${c.reason ?? 'closed'}`;
  }
}

function ConnBar(props: { store: Store; actions: Actions }) {
  const { conn } = props.store;
  return html`
    <div class="conn" data-test="conn-state" data-state=${conn.state} data-node=${conn.node ?? ''} role="status">
      <span class="conn-dot"></span><span class="conn-text">${connText(props.store)}</span>
      ${conn.state === 'closed' && html` <button class="link" data-test="reconnect" onClick=${props.actions.reconnect}>reconnect</button>`}
    </div>`;
}

export function App(props: { store: Store; actions: Actions }) {
  const { store, actions } = props;
  useStore(store);
  const chat = actions.chat();
  const banner = store.insecure && html`
    <div class="dev-banner" data-test="dev-banner">Development mode: logins without a password, loopback only</div>`;
  if (store.phase === 'boot') {
    return html`${banner}<main class="boot">${store.bootError
      ? html`<p class="error" data-test="boot-error">${store.bootError} <button onClick=${() => location.reload()}>retry</button></p>`
      : 'Loading…'}</main>`;
  }
  if (store.phase === 'login' || !chat) return html`${banner}<${LoginView} store=${store} onLogin=${actions.login} />`;
  const open = store.open ? store.convs.get(store.open) : undefined;
  return html`
    ${banner}
    <div class=${`app${open ? ' has-open' : ''}`}>
      <header class="top">
        <strong class="brand">imring</strong>
        <${ConnBar} store=${store} actions=${actions} />
        <span class="me" data-test="me" title=${store.me}>${store.myName ? `${store.myName} (${store.me})` : store.me}</span>
        <button class="link" data-test="logout" onClick=${actions.logout}>log out</button>
      </header>
      <div class="panes">
        <${Sidebar} store=${store} chat=${chat} />
        ${open
          ? html`<${ConversationView} key=${open.id} store=${store} chat=${chat} c=${open} />`
          : html`<section class="conversation none"><p class="empty">Pick a conversation, or start one with a user id.</p></section>`}
      </div>
    </div>`;
}
