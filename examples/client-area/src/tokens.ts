/**
 * Demo tokens arrive in the URL fragment (#token=…, as GraphiQL takes them, or by role:
 * #client=…&manager=…&admin=…),
 * which the browser never sends to a server or writes to access logs, unlike a query
 * string.  They are kept for the tab only (sessionStorage) and the fragment is cleared.
 */
export type Tokens = Record<string, string>;

const KEY = "brokergraph.tokens";

export function loadTokens(): Tokens {
  const stored: Tokens = JSON.parse(sessionStorage.getItem(KEY) ?? "{}") as Tokens;
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  let changed = false;
  for (const [name, value] of fragment) {
    if (value) {
      stored[name === "token" ? roleOf(value) : name] = value;
      changed = true;
    }
  }
  if (changed) {
    sessionStorage.setItem(KEY, JSON.stringify(stored));
    history.replaceState(null, "", window.location.pathname);
  }
  return stored;
}

export function saveToken(role: string, token: string): Tokens {
  const stored = loadTokens();
  stored[role] = token;
  sessionStorage.setItem(KEY, JSON.stringify(stored));
  return stored;
}

/**
 * The role claim of a JWT, read (not verified: the gateway verifies) only to file the
 * token under the right role in the picker; "client" when it cannot be read.
 */
function roleOf(token: string): string {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload)) as { role?: unknown };
    return typeof claims.role === "string" ? claims.role : "client";
  } catch {
    return "client";
  }
}
