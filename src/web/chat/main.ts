// The chat app every node serves at `/`: asks the node its mode, logs in (again, after a reload,
// from sessionStorage) and runs one SDK session for the tab. Modules: auth (login, tokens, device),
// store (state), wire (the session), app/login/sidebar/me/contacts/conversation (views), chat.css.
//
// Elements that tests (test/web/chat.test.ts) and scripts find by `data-test`:
// - login: login-user (insecure mode) or login-token, login-submit, login-error; dev-banner; logout; me
// - conn-state (data-state = the session's state, data-node = the node's name), reconnect (when closed)
// - new-chat-user + new-chat (a user id, or #group to open a group), new-chat-error
// - new-group (group id), new-group-members (comma-separated), new-group-submit, new-group-error
// - conversations (data-loaded once the list is built), each conversation (data-conv) with presence
//   (data-online), last, unread (hidden when 0)
// - conversation-view (data-conv), messages (the scrolling list), load-older, each message (data-seq,
//   data-state pending|sent|failed, data-from) with body, sending|resending, send-error, seen
// - typing, composer, send; in a group: group-members, group-add-user, group-add-submit, group-error
//   and peer-status (a 1:1: the other user's presence and status text)
// - me-panel: my-name + my-name-save (display name), my-dot (data-presence), my-status (select),
//   my-status-text + my-status-save, my-error
// - tab-chats, tab-contacts with requests-badge (requests waiting for me; hidden when 0); each
//   conversation's presence also has data-presence (online|away|busy|offline)
// - contacts (data-loaded once the roster is in): contact-add-user, contact-add-text, contact-add,
//   contact-add-error, contacts-error; sections contact-requests, contact-friends, contact-sent,
//   contact-others, contact-blocked; each contact (data-user, data-state friend|requested|pending|none,
//   data-blocked, data-presence) with contact-open (opens the conversation), contact-dot, contact-name,
//   contact-status-text (friends) or contact-relation, and contact-accept, contact-decline,
//   contact-pending, contact-remove, contact-block, contact-unblock as they apply
import './chat.css';
import { html } from 'htm/preact';
import { render } from 'preact';
import { App } from './app.ts';
import type { Actions } from './app.ts';
import { devToken, health, savedLogin, saveLogin } from './auth.ts';
import type { Login } from './auth.ts';
import { Store } from './store.ts';
import { Chat } from './wire.ts';

const store = new Store();
let chat: Chat | undefined;

async function start(login: Login, freshDevice = false): Promise<void> {
  chat?.stop();
  store.reset();
  store.loginError = '';
  const c = await Chat.start(store, login, { freshDevice });
  chat = c;
  c.session.on('state', (s) => {
    if (s.state !== 'closed' || chat !== c || !s.reason?.startsWith('login refused')) return;
    // A refused login (a bad or expired token) goes back to the login screen with the reason.
    c.stop();
    chat = undefined;
    saveLogin(undefined);
    store.loginError = s.reason;
    store.phase = 'login';
    store.changed();
  });
  store.phase = 'chat';
  store.changed();
}

const actions: Actions = {
  chat: () => chat,
  async login(req) {
    let login: Login;
    if ('token' in req) login = { user: req.user, token: req.token };
    else {
      // A development token when the node hands them out; else a bare user id (insecure mode takes it).
      const token = await devToken(req.user);
      login = token ? { user: req.user, token, dev: true } : { user: req.user };
    }
    saveLogin(login);
    await start(login);
  },
  logout() {
    chat?.stop();
    chat = undefined;
    saveLogin(undefined);
    store.reset();
    store.phase = 'login';
    store.changed();
  },
  reconnect() {
    const login = savedLogin();
    if (!login) return actions.logout();
    // Closed because another tab logged in as this device (a duplicated tab copies sessionStorage): be a new device.
    void start(login, store.conn.reason?.startsWith('replaced') ?? false);
  },
};

async function boot(): Promise<void> {
  try {
    const h = await health();
    store.insecure = h.insecure === true;
    store.node = h.node;
  } catch (e) {
    store.bootError = `This node does not answer (${e instanceof Error ? e.message : String(e)}).`;
    store.changed();
    return;
  }
  const saved = savedLogin();
  if (saved) await start(saved);
  else {
    store.phase = 'login';
    store.changed();
  }
}

render(html`<${App} store=${store} actions=${actions} />`, document.getElementById('app')!);
void boot();
