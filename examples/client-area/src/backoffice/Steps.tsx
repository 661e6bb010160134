/** One step of a provisioning flow as the gateway reports it. */
export interface Step {
  name: string;
  succeeded: boolean;
  reference?: string | null;
  message?: string | null;
  code?: string | null;
}

/** A flow's steps in order: each done (with the platform's reference) or failed (why). */
export function Steps({ steps }: { steps: readonly Step[] }) {
  if (!steps.length) return null;
  return (
    <ol className="steps">
      {steps.map((step, index) => (
        <li
          key={`${index}-${step.name}`}
          data-step={step.name}
          data-succeeded={String(step.succeeded)}
          className={step.succeeded ? "step-ok" : "step-failed"}
        >
          <span aria-hidden="true">{step.succeeded ? "✓" : "✗"}</span>{" "}
          <strong>{step.name}</strong> {step.succeeded ? "done" : "failed"}
          {step.reference ? ` (reference ${step.reference})` : ""}
          {step.code && !step.message?.startsWith(step.code) ? `: ${step.code}` : ""}
          {step.message ? ` — ${step.message}` : ""}
        </li>
      ))}
    </ol>
  );
}
