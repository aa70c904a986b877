// The SDK guide's runnable example (examples/hello.ts) runs against a real node as written.
import test from 'ava';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { cleanup, startNode } from '../helpers/node.ts';

test.after.always(cleanup);

test('examples/hello.ts chats through a node and exits 0', async (t) => {
  const node = await startNode({ args: ['--insecure'] });
  const example = resolve(import.meta.dirname, '../../examples/hello.ts');
  const { stdout } = await promisify(execFile)(process.execPath, [example, node.url], { timeout: 30_000 });
  t.regex(stdout, /alice: sent as seq 1 /);
  t.regex(stdout, /bob got \[seq 1\] alice: hello bob/);
  t.regex(stdout, /bob: unread now 0/);
});
