import { useState } from "react";
import { useMutation } from "urql";
import { graphql } from "../gql";
import type { CreateTraderInput, CreateTraderMutation } from "../gql/graphql";
import { describe, failureKind, newKey, type Outcome } from "./outcome";
import { Steps } from "./Steps";

const CreateTrader = graphql(`
  mutation CreateTrader($input: CreateTraderInput!) {
    createTrader(input: $input) {
      trader {
        id
        platform
        externalId
        status
      }
      accounts {
        id
        number
      }
      steps {
        name
        succeeded
        reference
        message
        code
      }
      resumeToken
      replayed
      errors {
        code
        message
      }
    }
  }
`);

type Payload = CreateTraderMutation["createTrader"];

/**
 * createTrader on a platform, step by step.  A flow that stops midway has linked what it
 * made to the partner and answers a resume token: the form is then locked to that input
 * and offers to resume, which runs only the steps not yet done.  Each submission carries
 * one idempotency key, kept through a double click, a resume and a retry after an
 * unknown outcome (the retry reads back what the first attempt made instead of creating
 * a second trader); a final answer makes the next submission a new key.
 */
export function CreateTraderForm({
  partnerCode,
  platforms,
  onCreated,
}: {
  partnerCode: string;
  platforms: string[];
  onCreated: () => void;
}) {
  const [, createTrader] = useMutation(CreateTrader);
  const [platform, setPlatform] = useState(platforms[0] ?? "");
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [currency, setCurrency] = useState("");
  const [sending, setSending] = useState(false);
  const [key, setKey] = useState(newKey);
  // The input whose answer was lost: a retry sends exactly it again, with the same key.
  const [unsettled, setUnsettled] = useState<CreateTraderInput | null>(null);
  // The input of a stopped flow and its token: a resume sends exactly that input again.
  const [stopped, setStopped] = useState<{ input: CreateTraderInput; token: string } | null>(null);
  const [payload, setPayload] = useState<Payload | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  async function send(input: CreateTraderInput) {
    setSending(true);
    const result = await createTrader({ input: { ...input, idempotencyKey: key } });
    setSending(false);
    const answer = result.data?.createTrader ?? null;
    setPayload(answer);
    const failed = failureKind(result.error, answer?.errors);
    setUnsettled(failed === "unknown" ? { ...input, resumeToken: undefined } : null);
    if (answer?.resumeToken) {
      setStopped({ input: { ...input, resumeToken: undefined }, token: answer.resumeToken });
      setOutcome({
        kind: failed ?? "refused",
        text: `Stopped midway: ${describe(result.error, answer.errors)}. What was made is linked to ${partnerCode}; Resume runs only the steps not yet done.`,
      });
    } else if (failed) {
      setOutcome({
        kind: failed,
        text:
          failed === "unknown"
            ? `Outcome unknown: ${describe(result.error, answer?.errors)}. Retry sends the same key: the gateway reads back what the first attempt made instead of creating again.`
            : describe(result.error, answer?.errors),
      });
      if (failed !== "unknown") setKey(newKey()); // refused or not delivered: final
    } else {
      setStopped(null);
      setKey(newKey()); // done: the next submission is another trader
      const trader = answer?.trader;
      setOutcome({
        kind: "done",
        text: `Trader ${trader?.externalId ?? "?"} created on ${trader?.platform ?? input.platform}${
          answer?.accounts.length ? ` with account ${answer.accounts.map((a) => a.number).join(", ")}` : ""
        }${answer?.replayed ? " (answered from the first submission: created once)" : ""}.`,
      });
    }
    onCreated();
  }

  function submit(event: React.FormEvent) {
    event.preventDefault();
    if (stopped) {
      void send({ ...stopped.input, resumeToken: stopped.token });
      return;
    }
    if (unsettled) {
      void send(unsettled);
      return;
    }
    void send({
      platform,
      partnerCode,
      email: email.trim(),
      name: name.trim() || undefined,
      currency: currency.trim() || undefined,
    });
  }

  if (!platforms.length) return null;
  const locked = stopped !== null || unsettled !== null || sending;
  return (
    <section aria-labelledby="create-trader-title" className="bo-panel">
      <h3 id="create-trader-title">New trader</h3>
      <form className="create-trader" onSubmit={submit}>
        <label>
          Platform
          <select value={platform} disabled={locked} onChange={(event) => setPlatform(event.target.value)}>
            {platforms.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <label>
          Email
          <input type="email" value={email} readOnly={locked} onChange={(event) => setEmail(event.target.value)} required />
        </label>
        <label>
          Name
          <input value={name} readOnly={locked} onChange={(event) => setName(event.target.value)} />
        </label>
        <label>
          Currency
          <input
            value={currency}
            readOnly={locked}
            placeholder="default"
            maxLength={3}
            onChange={(event) => setCurrency(event.target.value.toUpperCase())}
          />
        </label>
        <button type="submit" disabled={sending}>
          {stopped ? "Resume create trader" : unsettled ? "Retry (same key)" : "Create trader"}
        </button>
        {stopped && (
          <button
            type="button"
            className="secondary"
            disabled={sending}
            onClick={() => {
              setStopped(null);
              setKey(newKey()); // a later submission is another request
              setOutcome(null);
              setPayload(null);
            }}
          >
            Leave it stopped
          </button>
        )}
      </form>
      {sending && <p aria-busy="true">Creating…</p>}
      {outcome && (
        <div className={`create-trader-result create-${outcome.kind}${stopped ? " create-stopped" : ""}`}>
          <p role={outcome.kind === "done" ? "status" : "alert"}>{outcome.text}</p>
          <Steps steps={payload?.steps ?? []} />
        </div>
      )}
    </section>
  );
}
