import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";
import { createClient as createWsClient } from "graphql-ws";

/** The gateway this page was served by: same origin, so no CORS and no URL to configure. */
const HTTP_URL = new URL("/graphql", window.location.href).toString();
const WS_URL = HTTP_URL.replace(/^http/, "ws");

/**
 * One urql client per token.  Queries and mutations go over HTTP with a bearer header;
 * subscriptions over graphql-ws, whose connection_init carries the same header.
 * In production the token is the access token of the broker's login (OIDC): pass it here.
 */
export function gatewayClient(token: string): Client {
  const ws = createWsClient({
    url: WS_URL,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 5,
  });
  return new Client({
    url: HTTP_URL,
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
    // Each viewer's data is their own; the document cache never outlives the token.
    requestPolicy: "cache-and-network",
    fetchOptions: () => ({
      headers: {
        Authorization: `Bearer ${token}`,
        Accept: "application/graphql-response+json, application/json",
      },
    }),
  });
}
