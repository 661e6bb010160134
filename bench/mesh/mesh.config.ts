// GraphQL Mesh composition of the cTrader trader read (tests/bench_mesh.py runs
// `mesh-compose -o <supergraph>` with this file). Endpoint and token are left as
// {env.*} placeholders: the gateway interpolates them at each upstream call, so the
// supergraph does not carry a sandbox's port or a manager's token.
import { defineConfig } from '@graphql-mesh/compose-cli';
import { loadOpenAPISubgraph } from '@omnigraph/openapi';

export const composeConfig = defineConfig({
  subgraphs: [
    {
      sourceHandler: loadOpenAPISubgraph('CTrader', {
        source: './ctrader-webserv.openapi.yaml',
        endpoint: '{env.CTRADER_URL}',
        queryParams: { token: '{env.CTRADER_TOKEN}' },
        // The sandbox, as cTrader, answers XML unless JSON is asked for.
        operationHeaders: { accept: 'application/json' },
      }),
    },
  ],
});
