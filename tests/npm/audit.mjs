// Runs graphql-http's GraphQL-over-HTTP audit against a running gateway and prints
// the results as JSON. Usage: node audit.mjs <graphql url>, with the bearer token in
// BROKERGRAPH_AUDIT_TOKEN (our /graphql refuses anonymous callers, and a token on the
// command line would show in the process list).
import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);
const token = process.env.BROKERGRAPH_AUDIT_TOKEN;
if (!url || !token) {
  console.error("usage: BROKERGRAPH_AUDIT_TOKEN=<token> node audit.mjs <graphql url>");
  process.exit(2);
}
const authorised = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn: authorised });
const report = results.map((result) => ({
  id: result.id,
  name: result.name,
  status: result.status,
  reason: result.status === "ok" ? null : result.reason,
}));
process.stdout.write(JSON.stringify(report));
