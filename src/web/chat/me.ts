// The top of the sidebar: my display name (my profile's name, which my contacts see) and my status
// with its text. Picking a status sets it at once (with the text in the box); the text is set
// with Enter or the button. Auto-away (5 minutes idle) shows here as 'away' when the session sets it.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { STATUSES } from '../../client/index.ts';
import type { StatusValue } from '../../client/index.ts';
import { dotOf } from './store.ts';
import type { Store } from './store.ts';
import type { Chat } from './wire.ts';

const LABELS: Record<StatusValue, string> = { available: 'Available', away: 'Away', busy: 'Busy', invisible: 'Invisible' };
const value = (e: Event) => (e.target as HTMLInputElement).value;

export function MePanel(props: { store: Store; chat: Chat }) {
  const { store, chat } = props;
  const mine = store.myStatus;
  const [name, setName] = useState(store.myName ?? '');
  const [text, setText] = useState(mine?.text ?? '');
  // The status picked here last: Set sends it even before the node has answered the pick (it
  // sent the node's last answer, and a Set right after a pick put the old status back). A ref,
  // so that a Set in the same turn as the pick, before any render, sees it too.
  const [picked, setPicked] = useState<StatusValue>(mine?.status ?? 'available');
  const pickedNow = useRef<StatusValue>(picked);
  // Status requests not yet answered: while one is, the node's answer to an earlier pick must not
  // replace a later one.
  const unanswered = useRef(0);
  const [error, setError] = useState('');
  // What the node says (first load, another change) replaces the boxes' text.
  useEffect(() => setName(store.myName ?? ''), [store.myName]);
  useEffect(() => setText(mine?.text ?? ''), [mine?.text]);
  useEffect(() => {
    if (unanswered.current > 0) return;
    pickedNow.current = mine?.status ?? 'available';
    setPicked(pickedNow.current);
  }, [mine?.status]);

  const saveName = async (ev: Event) => {
    ev.preventDefault();
    setError((await chat.setName(name)) ?? '');
  };
  const setStatus = async (status: StatusValue) => {
    pickedNow.current = status;
    setPicked(status);
    unanswered.current++;
    const err = await chat.setStatus(status, text);
    unanswered.current--;
    setError(err ?? '');
    if (err !== undefined && unanswered.current === 0) {
      // Refused: the select goes back to what the node holds.
      pickedNow.current = store.myStatus?.status ?? 'available';
      setPicked(pickedNow.current);
    }
  };
  const saveStatus = (ev: Event) => {
    ev.preventDefault();
    void setStatus(pickedNow.current);
  };
  const status = mine?.status ?? 'available';
  const dot = status === 'invisible' ? 'offline' : dotOf({ online: true, status });
  return html`
    <div class="me-panel" data-test="me-panel">
      <form class="row" onSubmit=${saveName}>
        <input data-test="my-name" placeholder=${`display name (${store.me})`} aria-label="display name" maxlength="64"
          value=${name} onInput=${(e: Event) => setName(value(e))} />
        <button type="submit" data-test="my-name-save">Save</button>
      </form>
      <form class="row" onSubmit=${saveStatus}>
        <span class=${`dot ${dot}`} data-test="my-dot" data-presence=${dot} title=${status}></span>
        <select data-test="my-status" aria-label="my status" disabled=${!mine} value=${picked}
          onChange=${(e: Event) => void setStatus(value(e) as StatusValue)}>
          ${STATUSES.map((s) => html`<option value=${s} selected=${s === picked}>${LABELS[s]}</option>`)}
        </select>
        <input data-test="my-status-text" placeholder="status text" aria-label="status text" maxlength="140"
          value=${text} onInput=${(e: Event) => setText(value(e))} />
        <button type="submit" data-test="my-status-save" disabled=${!mine}>Set</button>
      </form>
      <p class="error" data-test="my-error" hidden=${!error}>${error}</p>
    </div>`;
}
