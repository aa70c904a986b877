// How long cross-node work keeps retrying, in one place: every ordered channel, delivery, post,
// fan-out and replication batch takes its deadline and its pause between attempts from here.

/** A call to a home (a delivery, a forwarded request, a fan-out page) retries for this long
 * before the caller gets `unavailable`: within a client's patience, beyond a failover. */
export const CALL_DEADLINE_MS = 8000;

/** A write that must reach every copy (replication, a group's log and fan-out, a home's answer to
 * a forwarded send) waits this long before it gives up on a silent peer. */
export const COPY_DEADLINE_MS = 10_000;

/** The pause before retrying after a refusal (not the owner yet, ring moving, peer busy). */
export const RETRY_MS = 300;
