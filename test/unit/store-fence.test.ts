// A user's state being dropped (a stale copy replaced) refuses appends until the drop is done:
// an append that slipped in would keep a seq the drop forgets, and its commit would then fail
// on the UNIQUE key and stop the node (the peer fuzzer found this through absorb).
import test from 'ava';
import { openStore, removeStores, dm } from '../helpers/store.ts';

test.after.always(removeStores);

test('appends of a user are refused while its state is being dropped, and accepted after', async (t) => {
  let fatal: Error | undefined;
  const { s } = await openStore({ onFatal: (e) => (fatal = e) });
  await s.append(dm('u', 'u', 'a')).durable;
  const dropping = s.dropUsers(['u']);
  t.throws(() => s.append(dm('u', 'u', 'b')), { message: /being imported/ });
  await dropping;
  const { durable } = s.append(dm('u', 'u', 'c'));
  await durable;
  t.is(fatal, undefined);
  t.is(s.committedSeq('u'), 1, 'a new timeline after the drop');
});
