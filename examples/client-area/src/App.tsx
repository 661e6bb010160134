import { useMemo, useState } from "react";
import { Provider } from "urql";
import { gatewayClient } from "./client";
import { loadTokens, saveToken, type Tokens } from "./tokens";
import { ClientArea } from "./client/ClientArea";
import { BackOffice } from "./BackOffice";

export function App() {
  const [tokens, setTokens] = useState<Tokens>(loadTokens);
  const roles = Object.keys(tokens);
  const [role, setRole] = useState<string>(roles.includes("client") ? "client" : (roles[0] ?? ""));
  const [pasted, setPasted] = useState("");
  const token = tokens[role];
  const client = useMemo(() => (token ? gatewayClient(token) : null), [token]);

  return (
    <>
      <header>
        <h1>Client area</h1>
        <form
          className="role-picker"
          onSubmit={(event) => {
            event.preventDefault();
            if (pasted.trim()) {
              setTokens(saveToken(role || "client", pasted.trim()));
              setRole(role || "client");
              setPasted("");
            }
          }}
        >
          <label>
            Role
            <select value={role} onChange={(event) => setRole(event.target.value)}>
              {["client", "manager", "admin"].map((name) => (
                <option key={name} value={name}>
                  {name}
                  {tokens[name] ? "" : " (no token)"}
                </option>
              ))}
            </select>
          </label>
          <label>
            Token
            <input
              type="password"
              value={pasted}
              placeholder="paste the token the demo printed"
              onChange={(event) => setPasted(event.target.value)}
            />
          </label>
          <button type="submit">Use token</button>
        </form>
      </header>
      <main>
        {client ? (
          <Provider value={client} key={token}>
            {role === "client" ? <ClientArea token={token} /> : <BackOffice initialPartner="DEMO-001" />}
          </Provider>
        ) : (
          <p className="hint">
            No token for this role. Paste one printed by <code>./scripts/demo</code>, or open this
            page as <code>/client-area/#client=&lt;token&gt;</code>.
          </p>
        )}
      </main>
    </>
  );
}
