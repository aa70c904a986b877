// The peer wire format's encoders: the text of each envelope, and frames written straight into a
// buffer of their size, byte for byte what joining the envelopes would give.
import test from 'ava';
import { encodeError, encodeMessage, encodeResponse, frameOf, parseFrame, requestEnv, toJson } from '../../src/transport/envelope.ts';

const sizeOf = (envs: string[]) => envs.reduce((n, e) => n + Buffer.byteLength(e), 0);
const msg = { t: 'page', rows: [['alice', 1, 'héllo 👋 "quoted"\n', null]], more: true };

test('each envelope is the text of splicing the message\'s JSON into it, and parses back', (t) => {
  const m = JSON.stringify(msg);
  t.is(encodeMessage(msg), `{"k":"m","m":${m}}`);
  t.is(requestEnv(7, toJson(msg)), `{"k":"q","id":7,"m":${m}}`);
  t.is(encodeResponse(8, msg), `{"k":"r","id":8,"m":${m}}`);
  t.is(encodeResponse(9, null), '{"k":"r","id":9,"m":null}');
  const envs = [encodeMessage(msg), encodeResponse(8, msg), encodeError(3, 'no')];
  const frame = frameOf(envs, sizeOf(envs));
  t.deepEqual(parseFrame(frame), [{ k: 'm', m: msg }, { k: 'r', id: 8, m: msg }, { k: 'e', id: 3, message: 'no' }]);
});

test('a message JSON cannot write is refused, not sent as an envelope without it', (t) => {
  for (const m of [undefined, () => 1, Symbol('s')]) {
    t.throws(() => encodeMessage(m), { instanceOf: TypeError });
    t.throws(() => encodeResponse(1, m), { instanceOf: TypeError });
  }
});

test('a frame written into a buffer of its size is byte for byte the joined one, large and multi-byte alike', (t) => {
  const big = encodeResponse(1, { body: 'ü€𝄞'.repeat(60_000) }); // 540,000 UTF-8 bytes
  for (const envs of [[], [encodeMessage(1)], [encodeMessage(msg), big, encodeError(2, 'x')]]) {
    t.deepEqual(Buffer.from(frameOf(envs, sizeOf(envs))), Buffer.from(`[${envs.join(',')}]`, 'utf8'));
  }
  t.throws(() => frameOf([encodeMessage(msg)], 3), undefined, 'a wrong size is caught, not sent');
});
