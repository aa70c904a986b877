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

/** The codes an error carries across a peer link or to a client (docs/PROTOCOL.md, section 2). */
export type ErrorWireCode = ClientError['code'] | 'unavailable' | 'not_owner';

/** The one mapping from an error to its wire code: undefined for an error that has none (a bug,
 * which the caller logs and answers as `internal`). */
export function codeOf(e: unknown): { code: ErrorWireCode; message: string } | undefined {
  const name = (e as Error | undefined)?.name;
  const message = (e as Error | undefined)?.message ?? String(e);
  if (name === 'ClientError') return { code: (e as ClientError).code, message };
  if (name === 'ForbiddenError') return { code: 'forbidden', message };
  if (name === 'UnavailableError') return { code: 'unavailable', message };
  if (name === 'NotOwnerError') return { code: 'not_owner', message };
  return undefined;
}

/** The one mapping back: the error a wire code stands for (`not_owner` reads as unavailable to a
 * caller that does not retry it itself). */
export function errorOf(code: string, message: string): Error {
  switch (code) {
    case 'forbidden': return new ForbiddenError(message);
    case 'not_found': case 'conflict': case 'too_large': case 'bad_request': case 'rate_limited':
      return new ClientError(code, message);
    default: return new UnavailableError(message);
  }
}
