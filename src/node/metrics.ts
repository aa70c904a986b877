// Prometheus metrics of one node (prom-client): one registry per node, so tests can run several.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(node: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ node });
  collectDefaultMetrics({ register: registry });
  const reg = { registers: [registry] };
  return {
    registry,
    connections: new Gauge({ name: 'im_connections', help: 'open client WebSocket connections', ...reg }),
    sessions: new Gauge({ name: 'im_sessions', help: 'logged-in client connections on this gateway', ...reg }),
    framesIn: new Counter({ name: 'im_frames_in_total', help: 'client frames received, by op', labelNames: ['op'], ...reg }),
    framesOut: new Counter({ name: 'im_frames_out_total', help: 'frames sent to clients', ...reg }),
    errors: new Counter({ name: 'im_errors_total', help: 'error replies sent to clients, by code', labelNames: ['code'], ...reg }),
    messagesIn: new Counter({ name: 'im_messages_accepted_total', help: 'sends accepted (new messages)', ...reg }),
    messagesDup: new Counter({ name: 'im_messages_dup_total', help: 'sends answered as duplicates', ...reg }),
    messagesOut: new Counter({ name: 'im_messages_pushed_total', help: 'msg events pushed to connections', ...reg }),
    catchUps: new Counter({ name: 'im_push_catchups_total', help: 'connections caught up from their home: registered again at a home holding entries pushed to nobody (registered), a gap in the pushes (gap)', labelNames: ['reason'], ...reg }),
    slowClients: new Counter({ name: 'im_slow_clients_dropped_total', help: 'connections closed for falling too far behind', ...reg }),
    forwards: new Counter({ name: 'im_peer_forwards_total', help: 'calls sent to another home (forward), passed on by a home whose ring disagreed (reforward), retried (retry)', labelNames: ['kind'], ...reg }),
    membership: new Counter({ name: 'im_membership_events_total', help: 'membership events seen by this node', labelNames: ['type'], ...reg }),
    invalidPeerFrames: new Counter({ name: 'im_peer_invalid_frames_total', help: 'peer messages refused by validation', ...reg }),
    peerRefused: new Counter({ name: 'im_peer_refused_total', help: 'peer requests and messages refused: by type, and reason (not_member, not_target, bad_members, not_holder, not_home, invalid)', labelNames: ['type', 'reason'], ...reg }),
    peerQueueFull: new Counter({ name: 'im_peer_queue_full_total', help: 'per-peer send queue full: requests that waited for room (waited), requests failed after waiting (timeout), one-way messages dropped (dropped)', labelNames: ['kind'], ...reg }),
    peerFrames: new Gauge({ name: 'im_peer_frames', help: 'frames exchanged with each peer since start', labelNames: ['peer', 'dir'], ...reg }),
    peerBytes: new Gauge({ name: 'im_peer_bytes', help: 'bytes exchanged with each peer since start', labelNames: ['peer', 'dir'], ...reg }),
    peerMsgs: new Gauge({ name: 'im_peer_messages', help: 'peer messages (envelopes) exchanged with each peer since start', labelNames: ['peer', 'dir'], ...reg }),
    lease: new Gauge({ name: 'im_lease', help: '1 while this node holds the write lease (hears a majority of the members), else 0: without it it confirms and serves nothing', ...reg }),
    custodyDeaths: new Gauge({ name: 'im_custody_deaths', help: 'member deaths since this node last joined whose new holders may lack data: keys they gave this node are served only once filled', ...reg }),
    insecure: new Gauge({ name: 'im_insecure', help: '1 when this node accepts logins without a token (--insecure, loopback only), else 0', ...reg }),
    groupFanoutBehind: new Gauge({ name: 'im_group_fanout_behind', help: 'log entries of the groups this node is home of not yet handed to every member', ...reg }),
    limits: new Counter({ name: 'im_limits_hit_total', help: 'client requests refused or cut by a limit of docs/PROTOCOL.md (Limits): rate, in_flight, connections, devices, watched, read_bytes, rate_close (connections closed 1008)', labelNames: ['limit'], ...reg }),
    groupLimited: new Counter({ name: 'im_group_limited_total', help: 'group posts and typing notices refused by a per-group limit: rate, backlog (fan-out behind), typing', labelNames: ['reason'], ...reg }),
    groupSnapshots: new Counter({ name: 'im_group_snapshots_total', help: 'member snapshots written to group logs (loading a group reads the latest and the events after it)', ...reg }),
    fanoutRequests: new Counter({ name: 'im_fanout_requests_total', help: 'group fan-out requests sent to other nodes (one per home node and batch of group messages)', ...reg }),
    replicatedEntries: new Counter({ name: 'im_replicated_entries_total', help: 'timeline entries sent to replicas (acknowledged batches)', ...reg }),
    replicationUrgentExpired: new Counter({ name: 'im_replication_urgent_expired_total', help: 'users whose replication stopped going first to a replica after waiting past the write deadline', ...reg }),
    handoffEntries: new Counter({ name: 'im_handoff_entries_total', help: 'timeline entries moved by this node\'s handoffs (copied in on join, pushed out on leave)', ...reg }),
    handoffUsers: new Counter({ name: 'im_handoff_users_total', help: 'user states moved by this node\'s handoffs (copied in on join, pushed out on leave)', ...reg }),
    handoffsInFlight: new Gauge({ name: 'im_handoffs_in_flight', help: 'handoffs under way: this node\'s own copy (join or leave) plus newcomers it has paused users for', ...reg }),
    replicationQueued: new Gauge({ name: 'im_replication_queued', help: 'users with replication work queued, on the wire or deferred, summed over replicas', ...reg }),
    replicationBehind: new Gauge({ name: 'im_replication_behind', help: '(replica, user) pairs not known to be in sync since a ring change, gap or refusal', ...reg }),
    storeCommit: new Histogram({
      name: 'im_store_commit_seconds', help: 'duration of one group commit',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1], ...reg,
    }),
    storeBatch: new Histogram({
      name: 'im_store_batch_rows', help: 'timeline entries per group commit',
      buckets: [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000], ...reg,
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
