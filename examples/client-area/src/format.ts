/** An amount as the API sends it: a decimal string and its currency. */
export type Money = { amount: string; currency: string } | null | undefined;

/** Amounts are decimal strings from the API: shown as sent, never through a float. */
export function money(value: Money): string {
  return value ? `${value.amount} ${value.currency}` : "—";
}
