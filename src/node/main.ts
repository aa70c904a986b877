// The node's command-line entry. It turns on Node's compile cache before anything else is loaded,
// so that a restarting node reuses the code it compiled the last time (a start takes about a
// quarter less CPU: README, "Data, logs, metrics"), then loads the node itself (run.ts).
// The cache is the user's own (mode 0700), never a shared temp folder: compiled code is trusted
// as it is read. NODE_COMPILE_CACHE=DIR puts it elsewhere; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
import { mkdirSync } from 'node:fs';
import { enableCompileCache, flushCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

try {
  const dir = process.env.NODE_COMPILE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'imring', 'compile-cache');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  enableCompileCache(dir);
} catch {
  // No cache (a read-only home, say): the node starts as fast as it did before it had one.
}
await import('./run.ts');
// Written now that the node is up, not only at a clean exit, so that a node that is killed keeps it.
flushCompileCache();
