// The errors a PeerNet caller can meet. Callers branch on `name`; `peer` says which peer it was.

/** No answer within the request timeout, or a dial that did not finish within the dial timeout. */
export class PeerTimeoutError extends Error {
  override name = 'PeerTimeoutError';
  peer: string;
  constructor(peer: string, message = `peer ${peer} did not answer in time`) {
    super(message);
    this.peer = peer;
  }
}

/** The peer could not be reached, disconnected, or the stream carrying the request closed. */
export class PeerGoneError extends Error {
  override name = 'PeerGoneError';
  peer: string;
  constructor(peer: string, message = `peer ${peer} is gone`, options?: ErrorOptions) {
    super(message, options);
    this.peer = peer;
  }
}

/** The remote request handler threw; `message` is the remote error's message. */
export class PeerRemoteError extends Error {
  override name = 'PeerRemoteError';
  peer: string;
  constructor(peer: string, message: string) {
    super(message);
    this.peer = peer;
  }
}

/** A message that would not fit in one frame (maxFrameBytes) or is not JSON-serialisable. */
export class PeerMessageError extends Error {
  override name = 'PeerMessageError';
  peer: string;
  constructor(peer: string, message: string) {
    super(message);
    this.peer = peer;
  }
}

/** The send queue to the peer stayed full (its bounds in envelopes and bytes) for as long as the
 * request could wait: the peer or the link is too slow for what this node produces. */
export class PeerBusyError extends Error {
  override name = 'PeerBusyError';
  peer: string;
  constructor(peer: string, message: string) {
    super(message);
    this.peer = peer;
  }
}
