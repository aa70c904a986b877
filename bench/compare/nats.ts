// NATS JetStream: N nats-server processes (Debian's, 2.9) in one cluster, each with JetStream on
// file storage in the run's folder; one stream for every user's subject (u.<uid>) with R = 2
// replicas and a duplicate window for Nats-Msg-Id. nats-js reads each user's messages back from
// the stream through a durable consumer, nats-core through a plain subscription (nats-client.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, DiscardPolicy, nanos, RetentionPolicy, StorageType } from 'nats';
import type { JetStreamManager } from 'nats';
import { sleep } from '../lib.ts';
import { connectNats, STREAM } from './nats-client.ts';
import type { Delivery } from './nats-client.ts';
import { freePort, removeDir, runDir, startServer, stopServer, waitPort } from './procs.ts';
import type { Server } from './procs.ts';
import type { Adapter, Started, StartCtx } from './systems.ts';

export const REPLICAS = 2;
const READY_TIMEOUT_MS = 15_000;
/** A new cluster's JetStream meta group elects a leader before a stream can be created. */
const STREAM_TIMEOUT_MS = 30_000;
const API_TIMEOUT_MS = 5_000;

function config(name: string, dir: string, port: number, clusterPort: number, routes: number[]): string {
  return [
    `server_name: ${name}`,
    `listen: "127.0.0.1:${port}"`,
    `jetstream { store_dir: "${join(dir, name)}", max_memory_store: 256MB, max_file_store: 8GB }`,
    `cluster { name: imcompare, listen: "127.0.0.1:${clusterPort}", no_advertise: true, routes: [ ${routes.map((p) => `"nats-route://127.0.0.1:${p}"`).join(', ')} ] }`,
  ].join('\n') + '\n';
}

async function addStream(jsm: JetStreamManager): Promise<void> {
  const end = Date.now() + STREAM_TIMEOUT_MS;
  for (;;) {
    try {
      await jsm.streams.add({
        name: STREAM, subjects: ['u.>'], storage: StorageType.File, num_replicas: REPLICAS,
        retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, max_age: nanos(3_600_000),
        max_bytes: 4 * 1024 ** 3, duplicate_window: nanos(120_000),
      });
      return;
    } catch (e) {
      if (Date.now() > end) throw new Error(`stream ${STREAM} not created within ${STREAM_TIMEOUT_MS / 1000} s: ${(e as Error).message}`);
      await sleep(250);
    }
  }
}

/** Where the stream sits and what it holds, and one consumer's state: evidence that messages went
 * through the stream and its consumers as configured. */
async function inspect(endpoint: string): Promise<Record<string, unknown>> {
  const nc = await connect({ servers: endpoint, reconnect: false });
  try {
    const jsm = await nc.jetstreamManager({ timeout: API_TIMEOUT_MS, checkAPI: false });
    const si = await jsm.streams.info(STREAM);
    const out: Record<string, unknown> = {
      stream: { leader: si.cluster?.leader, replicas: si.cluster?.replicas?.map((r) => r.name), msgs: si.state.messages, consumers: si.state.consumer_count },
    };
    const page = si.state.consumer_count ? await jsm.consumers.list(STREAM).next() : [];
    const ci = page[0];
    if (ci) {
      out.consumer = {
        name: ci.name, ack: ci.config.ack_policy, storage: ci.config.mem_storage ? 'memory' : 'file', leader: ci.cluster?.leader,
        replicas: ci.cluster?.replicas?.map((r) => r.name), ackFloor: ci.ack_floor.stream_seq, pending: ci.num_ack_pending,
      };
    }
    return out;
  } finally {
    await nc.close();
  }
}

async function start(ctx: StartCtx): Promise<Started> {
  const dir = runDir('nats');
  const servers: Server[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    for (const s of servers) await stopServer(s);
    removeDir(dir);
  })());
  try {
    const ports: number[] = [];
    const cports: number[] = [];
    for (let i = 0; i < ctx.nodes; i++) ports.push(await freePort()), cports.push(await freePort());
    for (let i = 0; i < ctx.nodes; i++) {
      const name = `n${i + 1}`;
      const file = join(dir, `${name}.conf`);
      writeFileSync(file, config(name, dir, ports[i]!, cports[i]!, cports.filter((_, j) => j !== i)));
      servers.push(startServer(`nats${i + 1}`, 'nats-server', ['-c', file]));
    }
    await Promise.all(ports.map((p) => waitPort(p, READY_TIMEOUT_MS)));
    const endpoints = ports.map((p) => `127.0.0.1:${p}`);
    const nc = await connect({ servers: endpoints[0], reconnect: false });
    try {
      await addStream(await nc.jetstreamManager({ timeout: 2000, checkAPI: false }));
    } finally {
      await nc.close();
    }
    return { endpoints, procs: servers.map((s) => ({ name: s.name, pid: s.pid })), inspect: () => inspect(endpoints[0]!), stop };
  } catch (e) {
    const logs = servers.map((s) => `--- ${s.name}:\n${s.tail().slice(-800)}`).join('\n');
    await stop();
    throw new Error(`${(e as Error).message}\n${logs}`);
  }
}

const natsAdapter = (delivery: Delivery, about: string): Adapter => ({
  about,
  start,
  connect: (u, hooks) => connectNats(u, hooks, delivery),
});

export const natsJs = natsAdapter('stream',
  `NATS JetStream 2.9, file storage, R = ${REPLICAS}, Nats-Msg-Id dedup: the PubAck once both replicas have the message (written, fsynced on a timer); delivery by a durable consumer per user`);
export const natsCore = natsAdapter('core',
  `the same JetStream cluster and publish, delivery by a core subscription (the live message; the stream is not read)`);
