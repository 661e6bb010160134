import { useState } from "react";
import { useMutation } from "urql";
import { graphql } from "../gql";
import type { TaxCalculateMutation } from "../gql/graphql";
import type { TaxKind } from "../gql/graphql";
import { PeriodFields, lastDays, money, periodVariables, useClientContext, when, type Period } from "./common";

const TaxCalculate = graphql(`
  mutation TaxCalculate($input: CalculateTaxInput!) {
    calculateTax(input: $input) {
      calculation {
        platform
        kind
        taxBase {
          amount
          currency
        }
        taxAmount {
          amount
          currency
        }
        calculatedAt
      }
      errors {
        code
        message
        field
      }
    }
  }
`);

type Calculation = NonNullable<TaxCalculateMutation["calculateTax"]["calculation"]>;

/** The income tax the broker would withhold on a withdrawal, before making it. */
export function Tax() {
  const context = useClientContext("TAX");
  const [calculating, calculate] = useMutation(TaxCalculate);
  const [amount, setAmount] = useState("100000.00");
  const [currency, setCurrency] = useState("RUB");
  const [kind, setKind] = useState<TaxKind>("WITHDRAWAL");
  const [period, setPeriod] = useState<Period>(() => lastDays(365));
  // The day of the withdrawal: its year's income up to that day is taxed.
  const today = lastDays(1).to;
  const [date, setDate] = useState(today);
  const [result, setResult] = useState<Calculation | null>(null);
  const [taxedYear, setTaxedYear] = useState("");
  const [message, setMessage] = useState<string | null>(null);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    if (!context.partnerCode) return;
    setMessage(null);
    setResult(null);
    const { from, to } = periodVariables(period);
    const answer = await calculate({
      input:
        kind === "WITHDRAWAL"
          ? { partnerCode: context.partnerCode, kind, amount, currency, date }
          : { partnerCode: context.partnerCode, kind, periodFrom: from, periodTo: to },
    });
    const errors = answer.data?.calculateTax.errors ?? [];
    if (answer.error) setMessage(answer.error.message);
    else if (errors.length) setMessage(errors.map((e) => `${e.code}: ${e.message}`).join("; "));
    else {
      setTaxedYear(date.slice(0, 4));
      setResult(answer.data?.calculateTax.calculation ?? null);
    }
  }

  return (
    <section aria-labelledby="tax-title">
      <h2 id="tax-title">Tax</h2>
      <p className="hint">
        The income tax the broker would withhold if you withdrew an amount on a day (on that
        year's income up to the day), or on a period's income. Nothing is withdrawn.
      </p>
      <form className="toolbar" onSubmit={submit}>
        <label>
          Calculate
          <select value={kind} onChange={(e) => setKind(e.target.value as TaxKind)}>
            <option value="WITHDRAWAL">for a withdrawal</option>
            <option value="PERIOD">for a period</option>
          </select>
        </label>
        {kind === "WITHDRAWAL" ? (
          <>
            <label>
              Amount
              <input value={amount} inputMode="decimal" required onChange={(e) => setAmount(e.target.value)} />
            </label>
            <label>
              Currency
              <input
                value={currency}
                required
                maxLength={3}
                onChange={(e) => setCurrency(e.target.value.toUpperCase())}
              />
            </label>
            <label>
              Withdrawal date
              <input type="date" value={date} max={today} required onChange={(e) => setDate(e.target.value)} />
            </label>
          </>
        ) : (
          <PeriodFields value={period} onChange={setPeriod} />
        )}
        <button type="submit" disabled={calculating.fetching || !context.partnerCode}>
          Calculate tax
        </button>
      </form>
      {message && (
        <p role="alert" className="field-error">
          {message}
        </p>
      )}
      {result && (
        <dl className="figures tax-result" data-platform={result.platform} data-kind={result.kind}>
          <div>
            <dt>{result.kind === "WITHDRAWAL" ? `Taxable income of ${taxedYear} to the day` : "Taxable income"}</dt>
            <dd className="num tax-base">{money(result.taxBase)}</dd>
          </div>
          <div>
            <dt>Tax withheld</dt>
            <dd className="num tax-amount">{money(result.taxAmount)}</dd>
          </div>
          <div>
            <dt>Calculated</dt>
            <dd>
              {when(result.calculatedAt)} by {result.platform}
            </dd>
          </div>
        </dl>
      )}
    </section>
  );
}
