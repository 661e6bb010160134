import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";
import { createClient as createWsClient } from "graphql-ws";
import { createClient as createSseClient } from "graphql-sse";

/** The gateway this page was served by: same origin, so no CORS and no URL to configure. */
const HTTP_URL = new URL("/graphql", window.location.href).toString();
const WS_URL = HTTP_URL.replace(/^http/, "ws");

/** Which transport carries subscriptions: the WebSocket, or GraphQL over SSE when it cannot be opened. */
export type Transport = "ws" | "sse";

/** What a browser test sees of the socket: each event's sequence, each resume point sent. */
interface StreamProbe {
  events: { sequence: number; kind: string | null }[];
  resumes: number[];
  /** The subscriptions' transport now; "sse" once the WebSocket could not be opened. */
  transport: Transport;
  /** Close the socket as a network cut would; reconnecting waits for reconnect(). */
  dropSocket(): Promise<void>;
  reconnect(): void;
}

declare global {
  interface Window {
    __bg?: StreamProbe;
  }
}

/**
 * The sequence of a subscription result, if its field carries one (orderEvents,
 * accountEvents, marketDataSubscriptionEvents all do).
 */
function sequenceOf(data: unknown): { sequence: number; kind: string | null } | null {
  if (!data || typeof data !== "object") return null;
  for (const field of Object.values(data)) {
    if (field && typeof field === "object" && typeof field.sequence === "number") {
      return { sequence: field.sequence, kind: typeof field.kind === "string" ? field.kind : null };
    }
  }
  return null;
}

/** Close codes after which GraphQL over SSE would be refused as well: no fallback. */
const REFUSED = new Set([4401, 4403]);

/**
 * One urql client per token.  Queries and mutations go over HTTP with a bearer header;
 * subscriptions over graphql-ws, whose connection_init carries the same header.  When
 * the WebSocket cannot be opened at all (a proxy that drops upgrades, a firewall), the
 * subscriptions go over GraphQL over SSE instead (graphql-sse, distinct connections:
 * one streaming POST each), on the same /graphql and with the same header; a socket
 * that did open once and later dropped keeps reconnecting as before.
 * In production the token is the access token of the broker's login (OIDC): pass it here.
 */
export function gatewayClient(token: string): Client {
  let socket: WebSocket | null = null;
  // Resolved while reconnecting may proceed; a test's dropSocket() holds it until
  // reconnect(), so what happens meanwhile can only arrive by resuming.
  let reconnectAllowed: Promise<void> = Promise.resolve();
  let allowReconnect = () => {};
  const probe: StreamProbe = {
    events: [],
    resumes: [],
    transport: "ws",
    dropSocket() {
      reconnectAllowed = new Promise((resolve) => (allowReconnect = resolve));
      const closing = socket;
      if (!closing) return Promise.resolve();
      return new Promise((resolve) => {
        closing.addEventListener("close", () => resolve(), { once: true });
        closing.close(4000, "socket cut");
      });
    },
    reconnect: () => allowReconnect(),
  };
  window.__bg = probe;
  /** The payloads of the live resumable subscriptions: what a reconnect re-sends. */
  const resumable = new Set<{ variables: Record<string, unknown> }>();
  /** Set once a socket opened: from then on a failure is a drop to retry, not a missing WebSocket. */
  let socketOpened = false;
  const ws = createWsClient({
    url: WS_URL,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 5,
    // A socket that never opened is not retried: its subscriptions move to SSE at once.
    shouldRetry: () => socketOpened,
    async retryWait(retries) {
      await reconnectAllowed;
      // graphql-ws' own backoff: 1 s, then doubling, plus up to 3 s of jitter.
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** retries + Math.random() * 3000));
    },
    on: {
      connected(opened, _payload, wasRetry) {
        socketOpened = true;
        socket = opened as WebSocket;
        if (wasRetry) {
          for (const input of resumable) {
            const after = input.variables.afterSequence;
            if (typeof after === "number") probe.resumes.push(after);
          }
        }
      },
    },
  });
  const sse = createSseClient({
    url: HTTP_URL,
    headers: { Authorization: `Bearer ${token}` },
    retryAttempts: 5,
  });
  return new Client({
    url: HTTP_URL,
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "", variables: { ...request.variables } };
          // Only documents declaring $afterSequence can resume; others restart afresh.
          const resumes = /\$afterSequence\b/.test(input.query);
          return {
            subscribe(sink) {
              // graphql-ws re-sends this very payload object when it reconnects, so
              // moving afterSequence forward on it makes every reconnect a resume after
              // the last event received, not a fresh start.  Per orderEvents' contract
              // one event is one sequence, growing by one: resuming after the last
              // one misses nothing and repeats nothing.
              if (resumes) resumable.add(input);
              const next = (result: unknown) => {
                const data = (result as { data?: unknown }).data;
                const seen = sequenceOf(data);
                if (seen && resumes) {
                  const last = input.variables.afterSequence;
                  if (typeof last !== "number" || seen.sequence > last) {
                    input.variables = { ...input.variables, afterSequence: seen.sequence };
                  }
                  probe.events.push(seen);
                }
                sink.next(result as Parameters<typeof sink.next>[0]);
              };
              const overSse = () =>
                // graphql-sse re-serialises this same payload on each reconnect, so a
                // resume after a dropped stream works as it does over the socket.
                sse.subscribe(
                  input,
                  { next, error: (error) => sink.error(error), complete: () => sink.complete() },
                  {
                    connecting(reconnecting) {
                      const after = input.variables.afterSequence;
                      if (reconnecting && resumes && typeof after === "number") probe.resumes.push(after);
                    },
                  },
                );
              let stop: () => void;
              if (probe.transport === "sse") {
                stop = overSse();
              } else {
                stop = ws.subscribe(input, {
                  next,
                  error(error) {
                    const code = error instanceof CloseEvent ? error.code : null;
                    if (!socketOpened && (code === null || !REFUSED.has(code))) {
                      // The WebSocket could not be opened: this and every later
                      // subscription go over SSE.
                      probe.transport = "sse";
                      stop = overSse();
                      return;
                    }
                    sink.error(error);
                  },
                  complete: () => sink.complete(),
                });
              }
              return {
                unsubscribe() {
                  resumable.delete(input);
                  stop();
                },
              };
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
