// Runs a shell script of the project to completion, as an operator would, capturing its output.
// Resolving on 'close' (not 'exit') also proves that nothing it started holds its output open.
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';

export type ScriptRun = { code: number | null; out: string; err: string };

export function runScript(script: string, args: string[], env: Record<string, string>): Promise<ScriptRun> {
  return new Promise((ok, ko) => {
    const p = spawn('bash', [script, ...args], { cwd: tmpdir(), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', ko);
    p.once('close', (code) => ok({ code, out, err }));
  });
}
