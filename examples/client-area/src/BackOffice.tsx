import { useCallback, useEffect, useRef, useState } from "react";
import { useQuery } from "urql";
import { AuditTrail } from "./backoffice/AuditTrail";
import { CreateTraderForm } from "./backoffice/CreateTrader";
import { MoneyForm } from "./backoffice/MoneyForm";
import { AccountsTable, PartnerOverview, TradersTable } from "./backoffice/Partner";
import "./backoffice/backoffice.css";

/**
 * The back office (manager or admin token): one partner seen across every platform —
 * its accounts and traders, a failing platform's rows carrying the typed error at their
 * path — with money movements (deposit, withdraw, credit, bonus: one idempotency key per
 * submission), trader provisioning step by step (resumable), DXtrade deactivation and
 * reactivation, QORT's enableTrading, and the partner's audit trail.
 */
export function BackOffice({ initialPartner }: { initialPartner: string }) {
  const [code, setCode] = useState(initialPartner);
  const [shown, setShown] = useState(initialPartner);
  // Bumped after every write: the partner's balances and its audit trail are read again.
  const [version, setVersion] = useState(0);
  const bump = useCallback(() => setVersion((v) => v + 1), []);
  const [{ data, error, fetching }, reexecute] = useQuery({
    query: PartnerOverview,
    variables: { code: shown },
    pause: !shown,
  });
  const seen = useRef(version);
  useEffect(() => {
    if (seen.current === version) return;
    seen.current = version;
    reexecute({ requestPolicy: "network-only" });
  }, [version, reexecute]);

  const partner = data?.businessPartner;
  const capabilities = new Map<string, Set<string>>(
    (data?.connectors ?? []).filter((c) => c.configured).map((c) => [c.platform, new Set<string>(c.capabilities)]),
  );
  const provisioning = [...capabilities].filter(([, caps]) => caps.has("TRADER_PROVISIONING")).map(([p]) => p);
  const accounts = (partner?.accounts ?? []).filter((a) => a !== null);

  return (
    <section aria-labelledby="backoffice-title" className="backoffice">
      <h2 id="backoffice-title">Back office</h2>
      <form
        className="partner-search"
        onSubmit={(event) => {
          event.preventDefault();
          setShown(code.trim());
        }}
      >
        <label>
          Partner code
          <input value={code} onChange={(event) => setCode(event.target.value)} required />
        </label>
        <button type="submit">Find partner</button>
      </form>
      {fetching && !data && <p aria-busy="true">Loading partner…</p>}
      {error && !partner && <p role="alert">{error.message}</p>}
      {data && !partner && !error && <p role="alert">No partner {shown} among those this token may see.</p>}
      {partner && (
        <div key={partner.code}>
          <h3 className="partner-name">
            {partner.name} ({partner.code}
            {partner.broker ? `, ${partner.broker}` : ""})
          </h3>
          <AccountsTable partner={partner} error={error} />
          <MoneyForm accounts={accounts} capabilities={capabilities} onMoved={bump} />
          <TradersTable partner={partner} error={error} capabilities={capabilities} onChanged={bump} />
          <CreateTraderForm partnerCode={partner.code} platforms={provisioning} onCreated={bump} />
          <AuditTrail code={partner.code} version={version} />
        </div>
      )}
    </section>
  );
}
