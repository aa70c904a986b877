// Login checks: HS256 JWTs with the cluster secret (jose), or a bare user id in insecure mode.
// A token must expire (`exp`), within the node's maximum token life; `aud`/`iss` when configured.
import { SignJWT, jwtVerify, errors } from 'jose';
import { isId } from '../protocol/frames.ts';

export class AuthError extends Error {
  override name = 'AuthError';
}

export type Auth = { verify(login: { token?: string; user?: string }): Promise<string> };

export type AuthInit = {
  secret: string;
  insecure: boolean;
  /** Longest life (seconds) a token may have: exp - iat, or exp - now without iat. */
  maxTokenLifeS: number;
  /** When set, the token's `aud` must name it. */
  audience?: string;
  /** When set, the token's `iss` must be it. */
  issuer?: string;
  /** Milliseconds since the epoch (tests inject a clock). */
  now?: () => number;
};

export function createAuth(init: AuthInit): Auth {
  const key = new TextEncoder().encode(init.secret);
  const now = init.now ?? Date.now;
  return {
    async verify(login) {
      if (login.token === undefined) {
        if (!init.insecure) throw new AuthError('a token is required (this node is not in insecure mode)');
        return login.user as string;
      }
      const at = now();
      let payload: { sub?: unknown; exp?: number; iat?: number };
      try {
        ({ payload } = await jwtVerify(login.token, key, {
          algorithms: ['HS256'],
          requiredClaims: ['exp'],
          currentDate: new Date(at),
          ...(init.audience !== undefined ? { audience: init.audience } : {}),
          ...(init.issuer !== undefined ? { issuer: init.issuer } : {}),
        }));
      } catch (e) {
        throw new AuthError(reason(e));
      }
      // A token issued in the future counts from now: its life is what it could be used for.
      const start = Math.min(payload.iat ?? at / 1000, at / 1000);
      const life = payload.exp! - start;
      if (life > init.maxTokenLifeS) {
        throw new AuthError(`token lives too long: ${Math.ceil(life)} s from ${payload.iat !== undefined ? 'iat' : 'now'} to exp, this node accepts at most ${init.maxTokenLifeS} s (--max-token-life)`);
      }
      const sub = payload.sub;
      if (!isId(sub)) throw new AuthError('token subject is not a valid user id');
      if (login.user !== undefined && login.user !== sub) throw new AuthError('user does not match the token subject');
      return sub;
    },
  };
}

/** What a client is told about a refused token: enough to fix its minting, nothing about the secret. */
function reason(e: unknown): string {
  if (e instanceof errors.JWTExpired) return 'token expired';
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'exp' && e.reason === 'missing') return 'token has no exp: this node accepts only tokens that expire';
    if (e.claim === 'aud') return e.reason === 'missing' ? 'token has no audience (aud): this node requires one' : 'token audience (aud) is not the one this node accepts';
    if (e.claim === 'iss') return e.reason === 'missing' ? 'token has no issuer (iss): this node requires one' : 'token issuer (iss) is not the one this node accepts';
    if (e.claim === 'nbf') return 'token not valid yet (nbf)';
    return `token claim ${e.claim} is invalid`;
  }
  return 'invalid token';
}

/** An HS256 token for a user, as the cluster accepts it (the CLI's `im token`, and in insecure mode
 * the node's development endpoint /dev/token). `expiresIn` as jose takes it: '1h', '7d', seconds. */
export function mintToken(secret: string, user: string, opts: { expiresIn?: string | number; audience?: string; issuer?: string } = {}): Promise<string> {
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt().setExpirationTime(opts.expiresIn ?? '1h');
  if (opts.audience !== undefined) jwt = jwt.setAudience(opts.audience);
  if (opts.issuer !== undefined) jwt = jwt.setIssuer(opts.issuer);
  return jwt.sign(new TextEncoder().encode(secret));
}
