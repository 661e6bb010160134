// Subscribes with graphql-sse's client (distinct connections mode) and prints every
// result as one JSON line: {"next": <result>}, then {"complete": true} or
// {"error": <message>}. Usage: node sse_subscribe.mjs <graphql url>, with the operation
// as JSON ({query, variables}) in BROKERGRAPH_SSE_OPERATION and the bearer token, if
// any, in BROKERGRAPH_SSE_TOKEN (a token on the command line would show in the process
// list). The test ends the process when it has seen enough.
import { createClient } from "graphql-sse";

const [url] = process.argv.slice(2);
const operation = JSON.parse(process.env.BROKERGRAPH_SSE_OPERATION ?? "null");
if (!url || !operation) {
  console.error("usage: BROKERGRAPH_SSE_OPERATION=<json> node sse_subscribe.mjs <graphql url>");
  process.exit(2);
}
const token = process.env.BROKERGRAPH_SSE_TOKEN;
const client = createClient({
  url,
  singleConnection: false,
  retryAttempts: 0, // a refusal is reported, not retried
  headers: token ? { authorization: `Bearer ${token}` } : {},
});
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
try {
  for await (const result of client.iterate(operation)) {
    print({ next: result });
  }
  print({ complete: true });
} catch (error) {
  // A refused request surfaces as the Response, or as an Error; print what it says.
  if (error instanceof Response) {
    print({ error: `${error.status}`, body: await error.text() });
  } else {
    print({ error: String(error?.message ?? error) });
  }
}
client.dispose();
