// Login checks: HS256 JWTs with the cluster secret (jose), or a bare user id in insecure mode.
import { jwtVerify, errors } from 'jose';
import { isId } from '../protocol/frames.ts';

export class AuthError extends Error {
  override name = 'AuthError';
}

export type Auth = { verify(login: { token?: string; user?: string }): Promise<string> };

export function createAuth(init: { secret: string; insecure: boolean }): Auth {
  const key = new TextEncoder().encode(init.secret);
  return {
    async verify(login) {
      if (login.token === undefined) {
        if (!init.insecure) throw new AuthError('a token is required (this node is not in insecure mode)');
        return login.user as string;
      }
      let sub: unknown;
      try {
        const { payload } = await jwtVerify(login.token, key, { algorithms: ['HS256'] });
        sub = payload.sub;
      } catch (e) {
        if (e instanceof errors.JWTExpired) throw new AuthError('token expired');
        throw new AuthError('invalid token');
      }
      if (!isId(sub)) throw new AuthError('token subject is not a valid user id');
      if (login.user !== undefined && login.user !== sub) throw new AuthError('user does not match the token subject');
      return sub;
    },
  };
}
