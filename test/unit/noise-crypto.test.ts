// noise's cipher functions with a KeyObject per session key (src/transport/noise-crypto.ts): what
// they seal, noise's own defaults open, and the other way round, for messages below and above the
// WebAssembly cut-off, given as one array or as a list; a forged tag or a wrong key is refused;
// a key array whose bytes change gets a new key rather than the old one.
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { Uint8ArrayList } from 'uint8arraylist';
import { noiseCrypto } from '../../src/transport/noise-crypto.ts';

const bytes = (x: Uint8Array | Uint8ArrayList): Buffer => Buffer.from(x instanceof Uint8Array ? x : x.subarray());
const nonce = (n: number): Uint8Array => {
  const b = new Uint8Array(12);
  new DataView(b.buffer).setUint32(4, n, true);
  return b;
};

for (const size of [12, 1199, 1200, 16_000, 65_519]) {
  for (const asList of [false, true]) {
    test(`a ${size}-byte message${asList ? ' given as a list' : ''} opens with noise's own functions, and theirs with ours`, (t) => {
      const k = randomBytes(32);
      const ad = randomBytes(32);
      const text = randomBytes(size);
      const input = asList ? new Uint8ArrayList(text.subarray(0, 7), text.subarray(7)) : text;
      const ours = bytes(noiseCrypto.chaCha20Poly1305Encrypt(input, nonce(1), ad, k));
      const theirs = bytes(defaultCrypto.chaCha20Poly1305Encrypt(input, nonce(1), ad, k));
      t.deepEqual(ours, theirs, 'the same ciphertext and tag');
      t.deepEqual(bytes(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce(1), ad, k)), text);
      const sealed = asList ? new Uint8ArrayList(theirs.subarray(0, 5), theirs.subarray(5)) : Buffer.from(theirs);
      t.deepEqual(bytes(noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce(1), ad, k)), text);
    });
  }
}

test('a forged tag, a wrong nonce or a wrong key is refused', (t) => {
  const k = randomBytes(32);
  const ad = randomBytes(32);
  const sealed = bytes(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(5000), nonce(7), ad, k));
  const forged = Buffer.from(sealed);
  forged[forged.length - 1]! ^= 1;
  t.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(forged, nonce(7), ad, k));
  t.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(Buffer.from(sealed), nonce(8), ad, k));
  t.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(Buffer.from(sealed), nonce(7), ad, randomBytes(32)));
  t.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(randomBytes(8), nonce(7), ad, k));
});

test('a key array whose bytes change is used with its new bytes', (t) => {
  const k = randomBytes(32);
  const ad = new Uint8Array(0);
  const text = randomBytes(4000);
  const before = bytes(noiseCrypto.chaCha20Poly1305Encrypt(text, nonce(1), ad, k));
  k[0]! ^= 0xff;
  const after = bytes(noiseCrypto.chaCha20Poly1305Encrypt(text, nonce(1), ad, k));
  t.notDeepEqual(after, before);
  t.deepEqual(after, bytes(defaultCrypto.chaCha20Poly1305Encrypt(text, nonce(1), ad, k)));
});
