import { useState } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "./gql";

const PartnerAccounts = graphql(`
  query PartnerAccounts($code: String!) {
    businessPartner(code: $code) {
      code
      name
      accounts {
        id
        platform
        number
        currency
        balance {
          amount
          currency
        }
      }
    }
  }
`);

const Deposit = graphql(`
  mutation Deposit($input: MoneyMovementInput!) {
    deposit(input: $input) {
      replayed
      operation {
        externalId
        amount {
          amount
          currency
        }
        balanceAfter {
          amount
          currency
        }
      }
      errors {
        code
        message
      }
    }
  }
`);

type Outcome =
  | { kind: "done"; text: string }
  | { kind: "refused"; text: string }
  | { kind: "unknown"; text: string };

/**
 * One idempotency key per form submission: made when the form is filled, kept through
 * a double click or a retry of an unknown outcome, replaced once an answer is final.
 */
function newKey(): string {
  return crypto.randomUUID();
}

export function BackOffice({ initialPartner }: { initialPartner: string }) {
  const [code, setCode] = useState(initialPartner);
  const [shown, setShown] = useState(initialPartner);
  const [{ data, error, fetching }, refetch] = useQuery({
    query: PartnerAccounts,
    variables: { code: shown },
    pause: !shown,
  });
  const [, deposit] = useMutation(Deposit);
  const [accountId, setAccountId] = useState("");
  const [amount, setAmount] = useState("100.00");
  const [key, setKey] = useState(newKey);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  const accounts = (data?.businessPartner?.accounts ?? []).filter((a) => a !== null);
  const target = accounts.find((a) => a.id === accountId) ?? accounts[0];

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    if (!target) return;
    // The key of this submission, read now: a second click before the answer sends
    // the same key, and the gateway answers it with the first result.
    const result = await deposit({ input: { accountId: target.id, amount, idempotencyKey: key } });
    const payload = result.data?.deposit;
    const topCode = result.error?.graphQLErrors
      .map((e) => (e.extensions as { code?: unknown }).code)
      .find((c) => typeof c === "string");
    const unknown = topCode === "OUTCOME_UNKNOWN" || payload?.errors.some((e) => e.code === "OUTCOME_UNKNOWN");
    if (unknown) {
      // The deposit may have been applied: keep the key, so a retry settles it.
      setOutcome({
        kind: "unknown",
        text: "Outcome unknown: the platform may have applied this deposit. Press Retry (same key) to settle it; do not enter it again.",
      });
      return;
    }
    if (result.error) setOutcome({ kind: "refused", text: result.error.message });
    else if (payload?.errors.length) {
      setOutcome({ kind: "refused", text: payload.errors.map((e) => `${e.code}: ${e.message}`).join("; ") });
    } else {
      const op = payload?.operation;
      setOutcome({
        kind: "done",
        text:
          `Deposited ${op?.amount.amount ?? amount} ${op?.amount.currency ?? ""} (operation ${op?.externalId ?? "?"})` +
          (payload?.replayed ? ", settled from the first submission: it moved once" : ""),
      });
      refetch({ requestPolicy: "network-only" });
    }
    setKey(newKey()); // the answer is final: the next submission is a new movement
  }

  return (
    <section aria-labelledby="backoffice-title">
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
      {error && !data?.businessPartner && <p role="alert">{error.message}</p>}
      {data?.businessPartner && (
        <>
          <h3>
            {data.businessPartner.name} ({data.businessPartner.code})
          </h3>
          <table className="accounts partner-accounts">
            <thead>
              <tr>
                <th scope="col">Platform</th>
                <th scope="col">Account</th>
                <th scope="col">Balance</th>
              </tr>
            </thead>
            <tbody>
              {accounts.map((a) => (
                <tr key={a.id} data-platform={a.platform} data-account={a.number}>
                  <td>
                    <span className={`badge badge-${a.platform}`}>{a.platform}</span>
                  </td>
                  <td>{a.number}</td>
                  <td className="num balance">{a.balance ? `${a.balance.amount} ${a.balance.currency}` : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {target && (
            <form className="deposit-form" onSubmit={submit}>
              <label>
                Account
                {/* While an outcome is unknown the retry must send the same movement. */}
                <select
                  value={target.id}
                  disabled={outcome?.kind === "unknown"}
                  onChange={(event) => setAccountId(event.target.value)}
                >
                  {accounts.map((a) => (
                    <option key={a.id} value={a.id}>
                      {a.platform} {a.number}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Amount
                <input
                  value={amount}
                  inputMode="decimal"
                  readOnly={outcome?.kind === "unknown"}
                  onChange={(event) => setAmount(event.target.value)}
                  required
                />
              </label>
              <button type="submit">{outcome?.kind === "unknown" ? "Retry deposit" : "Deposit"}</button>
            </form>
          )}
          {outcome && (
            <p role={outcome.kind === "done" ? "status" : "alert"} className={`deposit-${outcome.kind}`}>
              {outcome.text}
            </p>
          )}
        </>
      )}
    </section>
  );
}
