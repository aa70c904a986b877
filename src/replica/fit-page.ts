// Cutting an export page to what one peer message carries (a handoff reply, an absorb request).
import type { ExportPage } from '../store/index.ts';
import { entryWireChars, PEER_BUDGET_CHARS } from '../protocol/peer.ts';

/**
 * The part of an export page (entries ordered by user and seq, snapshots by user) that fits
 * PEER_BUDGET_CHARS (its message must fit a peer frame): a prefix of the entries (at least one), and the snapshots of the users whose
 * entries in the page are all in it. The page itself when it fits. What is left out comes with
 * the next request (the copier asks again from the last snapshot it got, after the seqs it has).
 */
export function fitPage(page: ExportPage): ExportPage {
  let chars = 0;
  let n = 0;
  for (; n < page.entries.length; n++) {
    chars += entryWireChars(page.entries[n]!.body);
    if (n > 0 && chars > PEER_BUDGET_CHARS) break;
  }
  if (n === page.entries.length) return page;
  const cut = page.entries[n - 1]!.user;
  const cutComplete = page.entries[n]!.user !== cut;
  return { users: page.users.filter((s) => s.user < cut || (s.user === cut && cutComplete)), entries: page.entries.slice(0, n) };
}
