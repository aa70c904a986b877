// The node's libp2p identity: an Ed25519 key kept in dataDir/peer.key, so that a restarted node
// comes back with the same peer id.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import type { Logger } from 'pino';
import { restrict, writeFileAtomic } from '../data-dir/index.ts';

export const KEY_FILE = 'peer.key';

export async function loadOrCreateKey(dataDir: string, log: Logger): Promise<PrivateKey> {
  const file = join(dataDir, KEY_FILE);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (bytes) {
    // A corrupt key file is an error, never a reason to become a different peer silently.
    const key = privateKeyFromProtobuf(bytes);
    await restrict(file, 0o600, log);
    return key;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = await generateKeyPair('Ed25519');
  // Atomic (temporary file, fsync, rename): a crash never leaves a half-written identity behind.
  await writeFileAtomic(file, privateKeyToProtobuf(key));
  log.info({ file }, 'generated a new peer identity');
  return key;
}
