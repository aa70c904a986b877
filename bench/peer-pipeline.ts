// The inbound peer pipeline (src/transport/inbound.ts: stream → length-prefixed decode → validate
// → dispatch, built with it-pipe) against the read loop it replaced (copied below as `before`), over
// the same in-memory stream: frames already encoded, cut into 64 KiB chunks as TCP and yamux hand
// them over, yielded by an async generator as a libp2p stream yields them. Two shapes: one small
// envelope per frame (a quiet link: the most frames per byte, so the most pipeline overhead per
// byte) and 32 per frame (a busy link's coalesced frames; a sixteenth as many frames, to keep the
// data in memory small). Rounds alternate before/after; the
// ratio is what to read (a micro-benchmark on a shared machine: absolute numbers drift).
//   node bench/peer-pipeline.ts [--frames 100000] [--rounds 5]
import { parseArgs } from 'node:util';
import * as lp from 'it-length-prefixed';
import { parseFrame, prefixBytes } from '../src/transport/envelope.ts';
import type { Envelope } from '../src/transport/envelope.ts';
import { readFrames } from '../src/transport/inbound.ts';
import type { LinkCounters } from '../src/transport/link.ts';

const { values } = parseArgs({ options: { frames: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '5' } } });
const FRAMES = Number(values.frames);
const ROUNDS = Number(values.rounds);
const MAX_FRAME_BYTES = 4 * 1024 * 1024;
const CHUNK = 64 * 1024;
// Stops early rather than hog a shared machine: the rounds done by then are reported.
const BUDGET_MS = 25_000;

type Read = (stream: AsyncIterable<Uint8Array>, c: LinkCounters, bad: (r: string) => void, dispatch: (e: Envelope) => void) => Promise<void>;

/** The read loop of src/transport/peer-net.ts before the pipeline (its #read, less the stream's
 * lifecycle around it, which is the same in both). */
const before: Read = async (stream, c, bad, dispatch) => {
  for await (const data of lp.decode(stream, { maxDataLength: MAX_FRAME_BYTES })) {
    c.framesIn++;
    c.bytesIn += data.byteLength + prefixBytes(data.byteLength);
    const envs = parseFrame(data.subarray());
    if (typeof envs === 'string') {
      bad(envs);
      return;
    }
    c.msgsIn += envs.length;
    for (const env of envs) dispatch(env);
  }
};

const after: Read = (stream, c, bad, dispatch) => readFrames(stream, { maxFrameBytes: MAX_FRAME_BYTES, counters: c, bad, dispatch });

function counters(): LinkCounters {
  return { framesOut: 0, framesIn: 0, bytesOut: 0, bytesIn: 0, msgsOut: 0, msgsIn: 0, dropped: 0, badFrames: 0, peakBuffered: 0, stalls: 0, queueWaits: 0, queueTimeouts: 0, queueDrops: 0 };
}

/** `frames` frames of `perFrame` envelopes like the cluster's one-way messages, as 64 KiB chunks. */
function wire(frames: number, perFrame: number): Uint8Array[] {
  const env = (i: number) => `{"k":"m","m":{"t":"push","to":"user${i % 1000}","mid":"m${i}","body":"hello there, number ${i}"}}`;
  const encoded: Uint8Array[] = [];
  for (let f = 0; f < frames; f++) {
    const envs: string[] = [];
    for (let e = 0; e < perFrame; e++) envs.push(env(f * perFrame + e));
    encoded.push(lp.encode.single(Buffer.from(`[${envs.join(',')}]`)).subarray());
  }
  const all = Buffer.concat(encoded);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += CHUNK) chunks.push(all.subarray(i, i + CHUNK));
  return chunks;
}

type Wire = { chunks: Uint8Array[]; frames: number; perFrame: number };

async function* stream(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

/** Frames per second through `read`, after checking it saw every frame and envelope. */
async function run(read: Read, w: Wire): Promise<number> {
  const { chunks, frames, perFrame } = w;
  const c = counters();
  let seen = 0;
  const t0 = performance.now();
  await read(stream(chunks), c, (r) => {
    throw new Error(`bad frame: ${r}`);
  }, (e) => {
    if (e.k === 'm') seen++;
  });
  const s = (performance.now() - t0) / 1000;
  if (c.framesIn !== frames || seen !== frames * perFrame) throw new Error(`saw ${c.framesIn} frames, ${seen} envelopes`);
  return frames / s;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => `${Math.round(n).toLocaleString('en')}/s`;

const start = performance.now();
for (const perFrame of [1, 32]) {
  const frames = perFrame === 1 ? FRAMES : Math.ceil(FRAMES / 16);
  const w: Wire = { chunks: wire(frames, perFrame), frames, perFrame };
  // Warm both up (JIT) before timing.
  await run(before, w);
  await run(after, w);
  const ratios: number[] = [];
  for (let r = 1; r <= ROUNDS && performance.now() - start < BUDGET_MS; r++) {
    // Alternate which goes first, so that neither always runs on a warmer or cooler machine.
    let a: number;
    let b: number;
    if (r % 2) {
      b = await run(before, w);
      a = await run(after, w);
    } else {
      a = await run(after, w);
      b = await run(before, w);
    }
    ratios.push(a / b);
    console.log(`${perFrame} envelope(s)/frame, round ${r}: before ${fmt(b)}, after ${fmt(a)} frames (after/before ${(a / b).toFixed(3)})`);
  }
  console.log(`${perFrame} envelope(s)/frame: median after/before ${median(ratios).toFixed(3)} over ${ratios.length} rounds`);
}
