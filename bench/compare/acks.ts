// Acknowledging deliveries, for the systems that keep a read cursor per reader (im's `ack`, a
// JetStream consumer's ack-all): one ack per connection every N deliveries, covering all before
// it, and the tail once no delivery came for a while. Counting, not a clock (the SDK acks 200 ms
// after a delivery), gives every system the same acks per message whatever its speed: by the
// clock, a slower system would also write more cursors per message.

/** The tail's ack, once a connection had no delivery for this long (well inside JetStream's
 * 30 s ack wait, after which it would deliver again). */
export const ACK_IDLE_MS = 1000;

export type AckBatch<T> = { delivered(latest: T): void; stop(): void };

export function batchedAcks<T>(every: number, post: (latest: T) => void): AckBatch<T> {
  let latest: T | undefined;
  let count = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (latest !== undefined) post(latest);
    latest = undefined;
    count = 0;
  };
  return {
    delivered(x) {
      latest = x;
      if (++count >= every) flush();
      if (timer) timer.refresh();
      else timer = setTimeout(flush, ACK_IDLE_MS);
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
