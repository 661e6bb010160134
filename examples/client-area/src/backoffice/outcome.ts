import type { CombinedError } from "urql";

/**
 * How a write ended, as staff must read it:
 * - done: the platform applied it (or a replay says it did, once);
 * - notdelivered: it provably never reached the platform (UPSTREAM_UNAVAILABLE /
 *   UPSTREAM_BUSY): nothing happened, submitting again is safe;
 * - unknown: it may have been applied and its answer was lost (OUTCOME_UNKNOWN, or the
 *   gateway's answer itself never arrived): only a retry with the SAME key settles it;
 * - refused: a final refusal (invalid input, insufficient funds …): nothing happened.
 */
export type OutcomeKind = "done" | "notdelivered" | "unknown" | "refused";

export interface Outcome {
  kind: OutcomeKind;
  text: string;
}

export interface PayloadError {
  code: string;
  message: string;
}

const NOT_DELIVERED = new Set(["UPSTREAM_UNAVAILABLE", "UPSTREAM_BUSY"]);

/** One idempotency key per form submission (kept through a double click or a retry). */
export function newKey(): string {
  return crypto.randomUUID();
}

/** The error codes of a result: the payload's typed errors, then top-level ones. */
function codes(error: CombinedError | undefined, errors: readonly PayloadError[] | undefined): string[] {
  const top = (error?.graphQLErrors ?? [])
    .map((e) => (e.extensions as { code?: unknown }).code)
    .filter((c): c is string => typeof c === "string");
  return [...(errors ?? []).map((e) => e.code), ...top];
}

/**
 * The kind of a write's answer; null when it was done.  A transport failure (no
 * GraphQL answer at all) is unknown: the request may have reached the gateway.
 */
export function failureKind(
  error: CombinedError | undefined,
  errors: readonly PayloadError[] | undefined,
): Exclude<OutcomeKind, "done"> | null {
  const found = codes(error, errors);
  if (found.includes("OUTCOME_UNKNOWN")) return "unknown";
  if (error?.networkError && !error.graphQLErrors.length) return "unknown";
  if (found.length && found.every((c) => NOT_DELIVERED.has(c))) return "notdelivered";
  if (found.length || error) return "refused";
  return null;
}

/** The refusal's text: each typed error as "CODE: message". */
export function describe(error: CombinedError | undefined, errors: readonly PayloadError[] | undefined): string {
  const typed = (errors ?? []).map((e) => `${e.code}: ${e.message}`);
  if (typed.length) return typed.join("; ");
  return error?.message ?? "no answer";
}
