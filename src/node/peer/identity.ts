// The node's libp2p identity: an Ed25519 key kept in dataDir/peer.key, so that a restarted node
// comes back with the same peer id.
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import type { Logger } from 'pino';

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
    const { mode } = await stat(file);
    if ((mode & 0o077) !== 0) {
      log.warn({ file, mode: (mode & 0o777).toString(8) }, 'peer key was readable by others; restricting it to mode 600');
      await chmod(file, 0o600);
    }
    return key;
  }
  await mkdir(dataDir, { recursive: true });
  const key = await generateKeyPair('Ed25519');
  // Write then rename, so a crash never leaves a half-written identity behind.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 });
  await rename(tmp, file);
  log.info({ file }, 'generated a new peer identity');
  return key;
}
