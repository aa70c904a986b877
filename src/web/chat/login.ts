// The login screen. A node in insecure (development) mode takes a user id: the app gets a
// development token for it from /dev/token. Otherwise the user pastes a token (a JWT signed with
// the cluster's secret by whatever issues them); its `sub` is the user id.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { isId } from '../../client/index.ts';
import { tokenUser } from './auth.ts';
import type { Store } from './store.ts';

export type LoginRequest = { user: string } | { token: string; user: string };

export function LoginView(props: { store: Store; onLogin(l: LoginRequest): void }) {
  const { store } = props;
  const [value, setValue] = useState('');
  const [error, setError] = useState('');
  const shown = error || store.loginError;

  const submit = (ev: Event) => {
    ev.preventDefault();
    const v = value.trim();
    if (store.insecure) {
      if (!isId(v)) return setError('A user id is 1 to 64 of A-Z a-z 0-9 _ . @ -');
      return props.onLogin({ user: v });
    }
    const t = tokenUser(v);
    if ('error' in t) return setError(t.error);
    props.onLogin({ token: v, user: t.user });
  };
  const onKey = (ev: KeyboardEvent) => {
    // In the token box Enter logs in too (a token has no line breaks); Shift+Enter does nothing special.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) submit(ev);
  };

  return html`
    <main class="login">
      <form class="login-box" onSubmit=${submit}>
        <h1>imring chat</h1>
        ${store.insecure
          ? html`<label for="login-user">User id</label>
              <input id="login-user" data-test="login-user" autocomplete="username" autofocus
                placeholder="alice" value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} />`
          : html`<label for="login-token">Login token</label>
              <textarea id="login-token" data-test="login-token" rows="5" autofocus spellcheck=${false}
                placeholder="eyJhbGciOiJIUzI1NiJ9…" value=${value} onKeyDown=${onKey}
                onInput=${(e: Event) => setValue((e.target as HTMLTextAreaElement).value)}></textarea>`}
        <button type="submit" data-test="login-submit">Log in</button>
        <p class="error" data-test="login-error" hidden=${!shown}>${shown}</p>
        <p class="hint">Connected to ${store.node || 'the node'}.</p>
      </form>
    </main>`;
}
