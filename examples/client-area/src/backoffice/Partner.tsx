import { useState } from "react";
import { useMutation, type CombinedError } from "urql";
import { graphql } from "../gql";
import type { PartnerOverviewQuery } from "../gql/graphql";
import { describe, failureKind, type Outcome } from "./outcome";
import { Steps, type Step } from "./Steps";
import { money } from "../format";
import { ErrorRow, PartialNotice, errorsAt } from "../ui/PartialList";

export const PartnerOverview = graphql(`
  query PartnerOverview($code: String!) {
    businessPartner(code: $code) {
      code
      name
      broker
      accounts {
        id
        platform
        number
        currency
        status
        balance {
          amount
          currency
        }
        equity {
          amount
          currency
        }
        credit {
          amount
          currency
        }
        bonus {
          amount
          currency
        }
      }
      traders {
        id
        platform
        externalId
        login
        email
        name
        status
      }
    }
    connectors {
      platform
      configured
      capabilities
    }
  }
`);

const DeactivateTrader = graphql(`
  mutation DeactivateTrader($input: DeactivateTraderInput!) {
    deactivateTrader(input: $input) {
      trader {
        id
        status
      }
      steps {
        name
        succeeded
        reference
        message
        code
      }
      errors {
        code
        message
      }
    }
  }
`);

const ReactivateTrader = graphql(`
  mutation ReactivateTrader($input: ReactivateTraderInput!) {
    reactivateTrader(input: $input) {
      trader {
        id
        status
      }
      steps {
        name
        succeeded
        reference
        message
        code
      }
      errors {
        code
        message
      }
    }
  }
`);

const EnableTrading = graphql(`
  mutation EnableTrading($input: PartnerOnPlatformInput!) {
    enableTrading(input: $input) {
      businessPartner {
        code
      }
      errors {
        code
        message
      }
    }
  }
`);

type Partner = NonNullable<PartnerOverviewQuery["businessPartner"]>;
/** The partner's accounts on every platform; a failing platform's rows carry its error. */
export function AccountsTable({ partner, error }: { partner: Partner; error: CombinedError | undefined }) {
  const failures = errorsAt(error, "businessPartner", "accounts");
  return (
    // Not a labelled region: its name would also answer to the money form's "Account".
    <section className="bo-panel">
      <h3>Accounts on every platform</h3>
      <PartialNotice count={failures.size} noun="account" />
      <table className="accounts partner-accounts">
        <thead>
          <tr>
            <th scope="col">Platform</th>
            <th scope="col">Account</th>
            <th scope="col">Status</th>
            <th scope="col">Balance</th>
            <th scope="col">Equity</th>
            <th scope="col">Credit</th>
            <th scope="col">Bonus</th>
          </tr>
        </thead>
        <tbody>
          {partner.accounts.map((a, index) =>
            a === null ? (
              <ErrorRow key={`error-${index}`} failure={failures.get(index)} index={index} span={6} kind="account" path={`businessPartner.accounts.${index}`} />
            ) : (
              <tr key={a.id} data-platform={a.platform} data-account={a.number} data-status={a.status}>
                <td>
                  <span className={`badge badge-${a.platform}`}>{a.platform}</span>
                </td>
                <td>{a.number}</td>
                <td>{a.status}</td>
                <td className="num balance">{money(a.balance)}</td>
                <td className="num equity">{money(a.equity)}</td>
                <td className="num credit">{money(a.credit)}</td>
                <td className="num bonus">{money(a.bonus)}</td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </section>
  );
}

/**
 * The partner's traders on every platform.  A DXtrade trader can be deactivated (its
 * user disabled, its accounts terminated) and reactivated (a new account opened);
 * QORT's onboarding ends with enableTrading, which uploads the partner's limits.
 */
export function TradersTable({
  partner,
  error,
  capabilities,
  onChanged,
}: {
  partner: Partner;
  error: CombinedError | undefined;
  capabilities: Map<string, Set<string>>;
  onChanged: () => void;
}) {
  const failures = errorsAt(error, "businessPartner", "traders");
  const [, deactivate] = useMutation(DeactivateTrader);
  const [, reactivate] = useMutation(ReactivateTrader);
  const [, enableTrading] = useMutation(EnableTrading);
  const [busy, setBusy] = useState<string | null>(null);
  const [result, setResult] = useState<{ traderId: string; action: string; outcome: Outcome; steps: Step[] } | null>(
    null,
  );
  const [enabled, setEnabled] = useState<Outcome | null>(null);

  async function change(traderId: string, externalId: string, action: "deactivate" | "reactivate") {
    setBusy(traderId);
    const answer =
      action === "deactivate"
        ? await deactivate({ input: { traderId } }).then((r) => ({ payload: r.data?.deactivateTrader, error: r.error }))
        : await reactivate({ input: { traderId } }).then((r) => ({ payload: r.data?.reactivateTrader, error: r.error }));
    setBusy(null);
    const failed = failureKind(answer.error, answer.payload?.errors);
    const text = failed
      ? `${failed === "unknown" ? "Outcome unknown" : failed === "notdelivered" ? "Not delivered" : "Refused"}: ${describe(answer.error, answer.payload?.errors)}`
      : `Trader ${externalId} ${action}d: now ${answer.payload?.trader?.status ?? "?"}`;
    setResult({
      traderId,
      action,
      outcome: { kind: failed ?? "done", text },
      steps: answer.payload?.steps ?? [],
    });
    onChanged();
  }

  async function enable() {
    setBusy("qort");
    const r = await enableTrading({ input: { partnerCode: partner.code, platform: "qort" } });
    setBusy(null);
    const errors = r.data?.enableTrading.errors;
    const failed = failureKind(r.error, errors);
    setEnabled({
      kind: failed ?? "done",
      text: failed ? describe(r.error, errors) : `Trading enabled on QORT for ${partner.code}: its limits were uploaded.`,
    });
    onChanged();
  }

  const canEnable = capabilities.get("qort")?.has("TRADING_ACCESS") ?? false;
  return (
    <section aria-labelledby="partner-traders-title" className="bo-panel">
      <h3 id="partner-traders-title">Traders on every platform</h3>
      <PartialNotice count={failures.size} noun="trader" />
      <table className="traders">
        <thead>
          <tr>
            <th scope="col">Platform</th>
            <th scope="col">Trader</th>
            <th scope="col">Name</th>
            <th scope="col">Status</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {partner.traders.map((t, index) =>
            t === null ? (
              <ErrorRow key={`error-${index}`} failure={failures.get(index)} index={index} span={4} kind="trader" path={`businessPartner.traders.${index}`} />
            ) : (
              <tr key={t.id} data-platform={t.platform} data-trader={t.externalId} data-status={t.status}>
                <td>
                  <span className={`badge badge-${t.platform}`}>{t.platform}</span>
                </td>
                <td>{t.login ?? t.externalId}</td>
                <td>{t.name ?? t.email ?? "—"}</td>
                <td className="trader-status">{t.status}</td>
                <td>
                  {t.platform === "dxtrade" &&
                    (t.status === "ACTIVE" ? (
                      <button
                        type="button"
                        disabled={busy !== null}
                        onClick={() => change(t.id, t.externalId, "deactivate")}
                      >
                        Deactivate <span className="visually-hidden">trader {t.externalId}</span>
                      </button>
                    ) : (
                      <button
                        type="button"
                        disabled={busy !== null}
                        onClick={() => change(t.id, t.externalId, "reactivate")}
                      >
                        Reactivate <span className="visually-hidden">trader {t.externalId}</span>
                      </button>
                    ))}
                </td>
              </tr>
            ),
          )}
        </tbody>
      </table>
      {busy && <p aria-busy="true">Working…</p>}
      {result && (
        <div className={`trader-result trader-${result.outcome.kind}`} data-action={result.action}>
          <p role={result.outcome.kind === "done" ? "status" : "alert"}>{result.outcome.text}</p>
          <Steps steps={result.steps} />
        </div>
      )}
      {canEnable && (
        <div className="enable-trading">
          <button type="button" disabled={busy !== null} onClick={enable}>
            Enable trading on QORT
          </button>
          {enabled && (
            <p role={enabled.kind === "done" ? "status" : "alert"} className={`enable-${enabled.kind}`}>
              {enabled.text}
            </p>
          )}
        </div>
      )}
    </section>
  );
}
