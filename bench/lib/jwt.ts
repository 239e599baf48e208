// The HS256 token the full-policy scenarios carry, and its secret: one secret, written as
// plain text (utf8) so that HAProxy's `jwt_verify(alg, "secret")` takes the same key.
import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'

export const JWT_ISSUER = 'https://issuer.bench.test'
export const JWT_AUDIENCE = 'bench'

export interface BenchJwt { secret: string, token: string }

/** A fresh 43-character secret (32 random bytes, base64url) and a token valid for 2 hours. */
export async function hs256Token (): Promise<BenchJwt> {
  const secret = randomBytes(32).toString('base64url')
  const token = await new SignJWT({ scope: 'orders:write' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(JWT_ISSUER)
    .setSubject('bench-user')
    .setAudience(JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(secret))
  return { secret, token }
}
