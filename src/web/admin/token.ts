// The form shown when this node answers 401: the admin token is the node's --admin-token.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';

export function TokenForm({ refused, onSubmit }: { refused: boolean; onSubmit: (token: string) => void }) {
  const [value, setValue] = useState('');
  const submit = (e: Event) => {
    e.preventDefault();
    if (value.trim()) onSubmit(value.trim());
  };
  return html`
    <form class="panel token" onSubmit=${submit} data-test="token-form">
      <h2>Admin token</h2>
      <p>This node's cluster data needs its admin token (the node's <code>--admin-token</code>).</p>
      ${refused ? html`<p class="bad" data-test="token-refused" role="alert">The node refused that token.</p>` : ''}
      <input data-test="admin-token" type="password" autocomplete="off" placeholder="admin token" aria-label="admin token"
        value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} autofocus />
      <button data-test="admin-token-submit" type="submit">Show the cluster</button>
      <p class="muted small">Kept in this tab only (sessionStorage). A link may carry it as <code>/admin#token=…</code>.</p>
    </form>`;
}
