// The cipher functions noise runs on every peer frame, as noise's own defaults do them (node's
// chacha20-poly1305 for large messages, its WebAssembly one below 1,200 bytes) with one change:
// each session key becomes a node:crypto KeyObject once, instead of raw bytes that node turns
// into a key again for every cipher it creates. Measured on these machines: creating a cipher
// from raw key bytes costs about 27 µs, from a KeyObject about 10 µs; a busy node seals or opens
// a noise message several times per delivered message (docs/BENCHMARKS.md). noise documents the
// `crypto` option for exactly this ("bring your own crypto"); the handshake is unchanged.
import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';

const ALGORITHM = 'chacha20-poly1305';
const TAG = 16;
/** Below this many bytes noise's WebAssembly cipher is faster than node's (noise's own cut-off). */
const SMALL = 1200;

type Bytes = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0];

/** One KeyObject per key array. noise never changes a key's bytes in place (a session's two
 * keys come fresh from its HKDF), but the bytes are checked anyway: a changed array gets a new key. */
const keys = new WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject }>();

function keyOf(k: Uint8Array): KeyObject {
  const hit = keys.get(k);
  if (hit && hit.bytes.equals(k)) return hit.key;
  const bytes = Buffer.from(k);
  const key = createSecretKey(bytes);
  keys.set(k, { bytes, key });
  return key;
}

/** The bytes of a Uint8Array or a Uint8ArrayList, as one Uint8Array (a list is copied once). */
const flat = (b: Bytes): Uint8Array => (b instanceof Uint8Array ? b : b.subarray());

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    if (plaintext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k);
    const text = flat(plaintext);
    const cipher = createCipheriv(ALGORITHM, keyOf(k), nonce, { authTagLength: TAG });
    cipher.setAAD(ad, { plaintextLength: text.byteLength });
    const updated = cipher.update(text);
    const final = cipher.final();
    const tag = cipher.getAuthTag();
    return Buffer.concat([updated, final, tag], updated.byteLength + final.byteLength + tag.byteLength);
  },
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
    const all = flat(ciphertext);
    if (all.byteLength < TAG) throw new Error('Invalid chacha20poly1305 decryption');
    const decipher = createDecipheriv(ALGORITHM, keyOf(k), nonce, { authTagLength: TAG });
    const text = all.subarray(0, all.byteLength - TAG);
    decipher.setAAD(ad, { plaintextLength: text.byteLength });
    decipher.setAuthTag(all.subarray(all.byteLength - TAG));
    const output = decipher.update(text);
    const final = decipher.final();
    return final.byteLength > 0 ? Buffer.concat([output, final], output.byteLength + final.byteLength) : output;
  },
};
