// Hive Gateway serving the composed supergraph (tests/bench_mesh.py starts
// `hive-gateway supergraph <file> --config-path gateway.config.ts`).
//
// As brokergraph, every request must carry a valid JWT (HS256, the same secret,
// issuer and audience brokergraph checks: JWT_SECRET), else it is refused;
// MESH_JWT_AUTH=0 turns that off (a reference row only: no one would serve a
// manager's token to anonymous callers).
// MESH_RESPONSE_CACHE=1 is the "warm" case: Hive's response caching (in-memory LRU,
// keyed by the Authorization header so one viewer's answer never serves another,
// 60 s); otherwise every request reaches the upstream.
import {
  createInlineSigningKeyProvider,
  defineConfig,
  extractFromHeader,
} from '@graphql-hive/gateway';

const auth = process.env.MESH_JWT_AUTH !== '0';
const secret = process.env.JWT_SECRET;
if (auth && !secret) {
  throw new Error('JWT_SECRET is not set');
}
const warm = process.env.MESH_RESPONSE_CACHE === '1';

export const gatewayConfig = defineConfig({
  jwt:
    auth && secret
      ? {
          signingKeyProviders: [createInlineSigningKeyProvider(secret)],
          tokenLookupLocations: [extractFromHeader({ name: 'authorization', prefix: 'Bearer' })],
          tokenVerification: {
            algorithms: ['HS256'],
            issuer: 'brokergraph',
            audience: 'brokergraph',
          },
          reject: { missingToken: true, invalidToken: true },
        }
      : undefined,
  responseCaching: warm
    ? {
        session: (request) => request.headers.get('authorization'),
        ttl: 60_000,
      }
    : undefined,
});
