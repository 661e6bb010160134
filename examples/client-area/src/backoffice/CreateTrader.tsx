import { useState } from "react";
import { useMutation } from "urql";
import { graphql } from "../gql";
import type { CreateTraderInput, CreateTraderMutation } from "../gql/graphql";
import { describe, failureKind, type Outcome } from "./outcome";
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
 * and offers to resume, which runs only the steps not yet done.
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
  // The input of a stopped flow and its token: a resume sends exactly that input again.
  const [stopped, setStopped] = useState<{ input: CreateTraderInput; token: string } | null>(null);
  const [payload, setPayload] = useState<Payload | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  async function send(input: CreateTraderInput) {
    setSending(true);
    const result = await createTrader({ input });
    setSending(false);
    const answer = result.data?.createTrader ?? null;
    setPayload(answer);
    const failed = failureKind(result.error, answer?.errors);
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
            ? `Outcome unknown: ${describe(result.error, answer?.errors)}. Send the same input again: the platform's flow for this email finds what was made.`
            : describe(result.error, answer?.errors),
      });
    } else {
      setStopped(null);
      const trader = answer?.trader;
      setOutcome({
        kind: "done",
        text: `Trader ${trader?.externalId ?? "?"} created on ${trader?.platform ?? input.platform}${
          answer?.accounts.length ? ` with account ${answer.accounts.map((a) => a.number).join(", ")}` : ""
        }.`,
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
    void send({
      platform,
      partnerCode,
      email: email.trim(),
      name: name.trim() || undefined,
      currency: currency.trim() || undefined,
    });
  }

  if (!platforms.length) return null;
  const locked = stopped !== null || sending;
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
          {stopped ? "Resume create trader" : "Create trader"}
        </button>
        {stopped && (
          <button
            type="button"
            className="secondary"
            disabled={sending}
            onClick={() => {
              setStopped(null);
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
