// Errors that cross module boundaries inside a node; callers branch on `name`, and the gateway
// turns them into the protocol's error codes (docs/PROTOCOL.md, section 2).

/** Logged in, but not allowed (error code `forbidden`). */
export class ForbiddenError extends Error {
  override name = 'ForbiddenError';
}

/** The cluster could not complete it now; retrying (with the same cid) is safe (`unavailable`). */
export class UnavailableError extends Error {
  override name = 'UnavailableError';
}

/** A peer asked this node for a key it does not own by its ring. */
export class NotOwnerError extends Error {
  override name = 'NotOwnerError';
  key: string;
  constructor(key: string, message = `not the owner of ${key}`) {
    super(message);
    this.key = key;
  }
}

/** A request the protocol refuses with this code (`not_found`, `conflict`, `too_large`, …);
 * `rate_limited` says in its message when to retry. */
export class ClientError extends Error {
  override name = 'ClientError';
  code: 'not_found' | 'conflict' | 'too_large' | 'bad_request' | 'forbidden' | 'rate_limited';
  constructor(code: ClientError['code'], message: string) {
    super(message);
    this.code = code;
  }
}
