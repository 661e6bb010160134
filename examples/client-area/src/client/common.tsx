import { createContext, useContext, useState } from "react";
import { useQuery, type CombinedError } from "urql";
import { graphql } from "../gql";
import type { ClientContextQuery } from "../gql/graphql";

/** The viewer's accounts and what each platform can do, for every client page's pickers. */
const ClientContext = graphql(`
  query ClientContext {
    connectors {
      platform
      capabilities
    }
    me {
      code
      accounts {
        id
        platform
        number
        currency
      }
    }
  }
`);

export type ClientAccount = NonNullable<NonNullable<ClientContextQuery["me"]>["accounts"][number]>;
export { money, type Money } from "../format";

/** An ISO instant as a short UTC date and time. */
export function when(iso: string | null | undefined): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : "—";
}

/**
 * The partner's code, its accounts (those that answered) and the platforms that declare
 * `capability`, so a page offers only accounts it can work on.
 */
export function useClientContext(capability: string | null) {
  const [{ data, error, fetching }] = useQuery({ query: ClientContext });
  const platforms = new Set(
    (data?.connectors ?? [])
      .filter((c) => capability === null || c.capabilities.includes(capability as never))
      .map((c) => c.platform),
  );
  const accounts = (data?.me?.accounts ?? []).filter(
    (a): a is ClientAccount => a !== null && platforms.has(a.platform),
  );
  return {
    partnerCode: data?.me?.code ?? null,
    accounts,
    platforms: [...platforms].sort(),
    loading: fetching && !data,
    error,
  };
}

export function AccountPicker({
  accounts,
  value,
  onChange,
  label = "Account",
}: {
  accounts: ClientAccount[];
  value: string;
  onChange: (id: string) => void;
  label?: string;
}) {
  return (
    <label>
      {label}
      <select value={value} onChange={(event) => onChange(event.target.value)}>
        {accounts.map((a) => (
          <option key={a.id} value={a.id}>
            {a.platform} {a.number} ({a.currency})
          </option>
        ))}
      </select>
    </label>
  );
}

/** A period picked as two calendar days, both included (UTC). */
export interface Period {
  from: string;
  to: string;
}

function day(offset: number): string {
  return new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
}

export function lastDays(days: number): Period {
  return { from: day(-days + 1), to: day(0) };
}

/** The API's [from, to): the first day's midnight to the midnight after the last day. */
export function periodVariables(period: Period): { from: string; to: string } {
  const end = new Date(`${period.to}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  return { from: `${period.from}T00:00:00Z`, to: end.toISOString().replace(".000Z", "Z") };
}

/**
 * A page's choice of one of the accounts that serve `capability`, and of a period: the
 * period being edited (`draft`) and the one shown, which `show()` makes the draft.
 */
export function useAccountPeriod(capability: string, days: number) {
  const context = useClientContext(capability);
  const [chosen, setChosen] = useState<string | null>(null);
  const [draft, setDraft] = useState<Period>(() => lastDays(days));
  const [period, setPeriod] = useState<Period>(draft);
  const accountId = chosen ?? context.accounts[0]?.id ?? null;
  return { context, accountId, setChosen, draft, setDraft, period, show: () => setPeriod(draft) };
}

export function PeriodFields({ value, onChange }: { value: Period; onChange: (p: Period) => void }) {
  return (
    <>
      <label>
        From
        <input type="date" value={value.from} required onChange={(e) => onChange({ ...value, from: e.target.value })} />
      </label>
      <label>
        To (included)
        <input type="date" value={value.to} required onChange={(e) => onChange({ ...value, to: e.target.value })} />
      </label>
    </>
  );
}

/** A field's typed GraphQL error (its code and message), where the query put one. */
export function fieldError(error: CombinedError | undefined, field: string): string | null {
  const found = error?.graphQLErrors.find((e) => e.path?.[e.path.length - 1] === field);
  if (!found) return error?.networkError ? error.message : null;
  const code = (found.extensions as { code?: unknown }).code;
  return `${String(code ?? "ERROR")}: ${found.message}`;
}

export function ErrorLine({ text }: { text: string | null }) {
  return text ? (
    <p role="alert" className="field-error">
      {text}
    </p>
  ) : null;
}

/** The bearer token of the page's client, for the few plain HTTP calls (report files). */
export const TokenContext = createContext<string>("");

export function useToken(): string {
  return useContext(TokenContext);
}
