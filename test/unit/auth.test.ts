// createAuth: tokens must expire, within the maximum life; audience and issuer when configured;
// insecure logins; each refusal an AuthError that says why. A fixed clock, no sleeping.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import { AuthError, createAuth } from '../../src/gateway/auth.ts';
import type { AuthInit } from '../../src/gateway/auth.ts';

const SECRET = 'unit-test-secret-of-thirty-two-bytes-at-least';
const NOW_S = 1_800_000_000;
const DAY = 24 * 3600;

function auth(over: Partial<AuthInit> = {}) {
  return createAuth({ secret: SECRET, insecure: false, maxTokenLifeS: 30 * DAY, now: () => NOW_S * 1000, ...over });
}

type Claims = { sub?: string; iat?: number; exp?: number; nbf?: number; aud?: string | string[]; iss?: string };
function sign(claims: Claims, secret = SECRET): Promise<string> {
  return new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

async function refused(t: ExecutionContext, p: Promise<string>, mention: string): Promise<void> {
  const e = await t.throwsAsync(p, { instanceOf: AuthError });
  t.true(e?.message.includes(mention) === true, `'${e?.message}' should say '${mention}'`);
}

test('a token with sub, iat and exp within the life is accepted', async (t) => {
  t.is(await auth().verify({ token: await sign({ sub: 'alice', iat: NOW_S, exp: NOW_S + 3600 }) }), 'alice');
  // exactly the maximum life is still accepted
  t.is(await auth().verify({ token: await sign({ sub: 'alice', iat: NOW_S - 10, exp: NOW_S - 10 + 30 * DAY }) }), 'alice');
  // without iat, the life counts from now
  t.is(await auth().verify({ token: await sign({ sub: 'bob', exp: NOW_S + 29 * DAY }) }), 'bob');
});

test('a token without exp is refused, saying that it must expire', async (t) => {
  await refused(t, auth().verify({ token: await sign({ sub: 'alice', iat: NOW_S }) }), 'no exp');
  await refused(t, auth().verify({ token: await sign({ sub: 'alice' }) }), 'no exp');
  // even with a generous maximum life
  await refused(t, auth({ maxTokenLifeS: Number.MAX_SAFE_INTEGER }).verify({ token: await sign({ sub: 'alice' }) }), 'expire');
});

test('an expired token is refused as expired', async (t) => {
  await refused(t, auth().verify({ token: await sign({ sub: 'alice', iat: NOW_S - 7200, exp: NOW_S - 1 }) }), 'expired');
  await refused(t, auth().verify({ token: await sign({ sub: 'alice', iat: NOW_S - 7200, exp: NOW_S }) }), 'expired');
});

test('a token that lives longer than --max-token-life is refused, naming the flag', async (t) => {
  const a = auth({ maxTokenLifeS: 3600 });
  // exp - iat too long, although it expires soon from now
  await refused(t, a.verify({ token: await sign({ sub: 'alice', iat: NOW_S - 7000, exp: NOW_S + 60 }) }), '--max-token-life');
  // no iat: exp - now too long
  await refused(t, a.verify({ token: await sign({ sub: 'alice', exp: NOW_S + 3601 }) }), 'from now');
  // iat in the future does not shorten the life: it counts from now
  await refused(t, a.verify({ token: await sign({ sub: 'alice', iat: NOW_S + 10 * DAY, exp: NOW_S + 10 * DAY + 60 }) }), 'at most 3600 s');
  // a ten-year token against the default of 30 days
  await refused(t, auth().verify({ token: await sign({ sub: 'alice', iat: NOW_S, exp: NOW_S + 3650 * DAY }) }), 'too long');
  t.is(await a.verify({ token: await sign({ sub: 'alice', iat: NOW_S, exp: NOW_S + 3600 }) }), 'alice');
});

test('--token-audience: aud must name it (string or list); missing or other is refused', async (t) => {
  const a = auth({ audience: 'im-chat' });
  const base = { sub: 'alice', iat: NOW_S, exp: NOW_S + 60 };
  t.is(await a.verify({ token: await sign({ ...base, aud: 'im-chat' }) }), 'alice');
  t.is(await a.verify({ token: await sign({ ...base, aud: ['other', 'im-chat'] }) }), 'alice');
  await refused(t, a.verify({ token: await sign({ ...base, aud: 'other' }) }), 'audience');
  await refused(t, a.verify({ token: await sign(base) }), 'no audience');
  // without the flag, aud is not checked
  t.is(await auth().verify({ token: await sign({ ...base, aud: 'anything' }) }), 'alice');
});

test('--token-issuer: iss must be it; missing or other is refused', async (t) => {
  const a = auth({ issuer: 'https://login.example' });
  const base = { sub: 'alice', iat: NOW_S, exp: NOW_S + 60 };
  t.is(await a.verify({ token: await sign({ ...base, iss: 'https://login.example' }) }), 'alice');
  await refused(t, a.verify({ token: await sign({ ...base, iss: 'https://evil.example' }) }), 'issuer');
  await refused(t, a.verify({ token: await sign(base) }), 'no issuer');
  t.is(await auth().verify({ token: await sign({ ...base, iss: 'whoever' }) }), 'alice');
});

test('other refusals: wrong secret, not yet valid, bad subject, user not the subject, no token', async (t) => {
  const base = { sub: 'alice', iat: NOW_S, exp: NOW_S + 60 };
  await refused(t, auth().verify({ token: await sign(base, 'another-secret-of-thirty-two-bytes-or-more') }), 'invalid token');
  await refused(t, auth().verify({ token: 'not.a.jwt' }), 'invalid token');
  await refused(t, auth().verify({ token: await sign({ ...base, nbf: NOW_S + 30 }) }), 'not valid yet');
  await refused(t, auth().verify({ token: await sign({ ...base, sub: 'not an id' }) }), 'subject');
  await refused(t, auth().verify({ token: await sign({ iat: NOW_S, exp: NOW_S + 60 }) }), 'subject');
  await refused(t, auth().verify({ token: await sign(base), user: 'bob' }), 'does not match');
  t.is(await auth().verify({ token: await sign(base), user: 'alice' }), 'alice');
  await refused(t, auth().verify({ user: 'alice' }), 'token is required');
});

test('insecure mode accepts a bare user, and still checks tokens that are given', async (t) => {
  const a = auth({ insecure: true });
  t.is(await a.verify({ user: 'alice' }), 'alice');
  await refused(t, a.verify({ token: await sign({ sub: 'alice' }) }), 'no exp');
});
