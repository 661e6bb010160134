import { useRef, useState } from "react";
import { useMutation, type CombinedError } from "urql";
import { graphql } from "../gql";
import type { DepositMutation } from "../gql/graphql";
import { describe, failureKind, newKey, type Outcome } from "./outcome";

// One document per mutation: each is its own typed operation (and its own name in
// the gateway's logs); the payloads are alike.
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
      }
      errors {
        code
        message
      }
    }
  }
`);

const Withdraw = graphql(`
  mutation Withdraw($input: MoneyMovementInput!) {
    withdraw(input: $input) {
      replayed
      operation {
        externalId
        amount {
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

const ChangeCredit = graphql(`
  mutation ChangeCredit($input: MoneyMovementInput!) {
    changeCredit(input: $input) {
      replayed
      operation {
        externalId
        amount {
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

const ChangeBonus = graphql(`
  mutation ChangeBonus($input: MoneyMovementInput!) {
    changeBonus(input: $input) {
      replayed
      operation {
        externalId
        amount {
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

type MoneyPayload = DepositMutation["deposit"];

export type Operation = "deposit" | "withdraw" | "credit" | "bonus";

/** What each operation is called, what it needs of a platform, and how it is told. */
export const OPERATIONS: Record<
  Operation,
  { label: string; button: string; capability: string; done: string; hint: string }
> = {
  deposit: { label: "Deposit", button: "Deposit", capability: "FUNDING", done: "Deposited", hint: "> 0" },
  withdraw: { label: "Withdrawal", button: "Withdraw", capability: "FUNDING", done: "Withdrew", hint: "> 0" },
  credit: {
    label: "Credit change",
    button: "Change credit",
    capability: "CREDIT",
    done: "Credit changed by",
    hint: "signed: < 0 removes",
  },
  bonus: {
    label: "Bonus change",
    button: "Change bonus",
    capability: "BONUS",
    done: "Bonus changed by",
    hint: "signed: < 0 removes",
  },
};

export interface MoneyAccount {
  id: string;
  platform: string;
  number: string;
  currency: string;
}

/**
 * Deposit, withdraw, change credit or bonus on one of the partner's accounts.  The
 * idempotency key belongs to a form submission: made when the form is filled, kept
 * through a double click (the gateway answers the second with the first result) and
 * through the retry of an unknown outcome (which settles it), replaced once the answer
 * is final.  While an outcome is unknown the form is locked to that very movement.
 */
export function MoneyForm({
  accounts,
  capabilities,
  onMoved,
}: {
  accounts: MoneyAccount[];
  /** platform -> its connector's capabilities */
  capabilities: Map<string, Set<string>>;
  onMoved: () => void;
}) {
  const [, deposit] = useMutation(Deposit);
  const [, withdraw] = useMutation(Withdraw);
  const [, changeCredit] = useMutation(ChangeCredit);
  const [, changeBonus] = useMutation(ChangeBonus);
  const [operation, setOperation] = useState<Operation>("deposit");
  const [accountId, setAccountId] = useState("");
  const [amount, setAmount] = useState("100.00");
  const [key, setKey] = useState(newKey);
  // Requests awaiting an answer per key, and keys answered for good: how a double
  // click's two answers are told apart from a submission's one.
  const inFlight = useRef(new Map<string, number>());
  const answered = useRef(new Set<string>());
  const [outcome, setOutcome] = useState<(Outcome & { operation: Operation; key: string }) | null>(null);

  const spec = OPERATIONS[operation];
  const eligible = accounts.filter((a) => capabilities.get(a.platform)?.has(spec.capability));
  const target = eligible.find((a) => a.id === accountId) ?? eligible[0];
  const locked = outcome?.kind === "unknown";

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    if (!target) return;
    // The key of this submission, read now: a second click before the answer sends
    // the same key, and the gateway answers it with the first result.
    const input = { accountId: target.id, amount, idempotencyKey: key };
    inFlight.current.set(key, (inFlight.current.get(key) ?? 0) + 1);
    let answer: { payload: MoneyPayload | undefined; error: CombinedError | undefined };
    if (operation === "deposit") {
      const r = await deposit({ input });
      answer = { payload: r.data?.deposit, error: r.error };
    } else if (operation === "withdraw") {
      const r = await withdraw({ input });
      answer = { payload: r.data?.withdraw, error: r.error };
    } else if (operation === "credit") {
      const r = await changeCredit({ input });
      answer = { payload: r.data?.changeCredit, error: r.error };
    } else {
      const r = await changeBonus({ input });
      answer = { payload: r.data?.changeBonus, error: r.error };
    }
    const { payload, error } = answer;
    const others = (inFlight.current.get(key) ?? 1) - 1;
    inFlight.current.set(key, others);
    const conflict = payload?.errors.some((e) => e.code === "IDEMPOTENCY_CONFLICT") ?? false;
    // A double click's second request may meet the first still in flight: the gateway
    // answers it IDEMPOTENCY_CONFLICT and moves nothing.  The first one's answer tells
    // how the movement ended, so this one is not shown over it.
    if (conflict && (others > 0 || answered.current.has(key))) return;
    // Alone, it means the key's outcome is not known yet: retry later with the same key.
    const failed = conflict ? "unknown" : failureKind(error, payload?.errors);
    if (failed !== "unknown") answered.current.add(key); // final: later answers are echoes
    const what = spec.label.toLowerCase();
    if (failed === "unknown") {
      // It may have been applied: keep the key, so a retry settles it.
      setOutcome({
        operation,
        key,
        kind: "unknown",
        text: `Outcome unknown: the platform may have applied this ${what}. Press Retry (same key) to settle it; do not enter it again.`,
      });
      onMoved();
      return;
    }
    if (failed === "notdelivered") {
      setOutcome({
        operation,
        key,
        kind: "notdelivered",
        text: `Not delivered: ${describe(error, payload?.errors)}. Nothing moved; submit again when the platform is back.`,
      });
    } else if (failed === "refused") {
      setOutcome({ operation, key, kind: "refused", text: describe(error, payload?.errors) });
    } else {
      const op = payload?.operation;
      setOutcome({
        operation,
        key,
        kind: "done",
        text:
          `${spec.done} ${op?.amount.amount ?? amount} ${op?.amount.currency ?? target.currency} (operation ${op?.externalId ?? "?"})` +
          (payload?.replayed ? ", settled from the first submission: it moved once" : ""),
      });
    }
    onMoved();
    setKey(newKey()); // the answer is final: the next submission is a new movement
  }

  if (!accounts.length) return null;
  return (
    <section aria-labelledby="money-title" className="bo-panel">
      <h3 id="money-title">Money</h3>
      <form className="deposit-form money-form" onSubmit={submit}>
        <label>
          Operation
          <select
            value={operation}
            disabled={locked}
            onChange={(event) => setOperation(event.target.value as Operation)}
          >
            {(Object.keys(OPERATIONS) as Operation[]).map((name) => (
              <option key={name} value={name}>
                {OPERATIONS[name].label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Account
          {/* While an outcome is unknown the retry must send the same movement. */}
          <select value={target?.id ?? ""} disabled={locked} onChange={(event) => setAccountId(event.target.value)}>
            {eligible.map((a) => (
              <option key={a.id} value={a.id}>
                {a.platform} {a.number}
              </option>
            ))}
          </select>
        </label>
        <label>
          Amount ({spec.hint})
          <input
            value={amount}
            inputMode="decimal"
            pattern="-?[0-9]+(\.[0-9]+)?"
            readOnly={locked}
            onChange={(event) => setAmount(event.target.value)}
            required
          />
        </label>
        <button type="submit" disabled={!target}>
          {locked ? `Retry ${spec.button.toLowerCase()}` : spec.button}
        </button>
      </form>
      {!target && <p className="hint">No account of this partner is on a platform that offers this.</p>}
      {outcome && (
        <p
          role={outcome.kind === "done" ? "status" : "alert"}
          className={`money-outcome money-${outcome.kind} ${outcome.operation}-${outcome.kind}`}
          data-key={outcome.key}
        >
          {outcome.text}
        </p>
      )}
    </section>
  );
}
