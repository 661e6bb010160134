import { compareDecimal, isDecimal, isMultipleOf } from "./decimal";

/** An instrument's order rules as `instruments` answers them: null where the platform gives none. */
export interface Rules {
  tickSize?: string | null;
  minQuantity?: string | null;
  maxQuantity?: string | null;
  quantityIncrement?: string | null;
}

/**
 * What the platform's rules say is wrong with the order before it is placed; none where
 * it gives no rule (null fields), so a platform without rules is left to check itself.
 */
export function ruleProblems(given: Rules, quantity: string, price: string): string[] {
  // A rule not written as a plain decimal is not checked here (the platform still is).
  const rule = (value: string | null | undefined) => (value && isDecimal(value) ? value : null);
  const rules = {
    tickSize: rule(given.tickSize),
    minQuantity: rule(given.minQuantity),
    maxQuantity: rule(given.maxQuantity),
    quantityIncrement: rule(given.quantityIncrement),
  };
  const problems: string[] = [];
  if (!isDecimal(quantity)) problems.push("Quantity must be a number such as 1 or 0.5.");
  else {
    if (rules.minQuantity && compareDecimal(quantity, rules.minQuantity) < 0)
      problems.push(`Quantity must be at least ${rules.minQuantity}.`);
    if (rules.maxQuantity && compareDecimal(quantity, rules.maxQuantity) > 0)
      problems.push(`Quantity must be at most ${rules.maxQuantity}.`);
    if (rules.quantityIncrement && !isMultipleOf(quantity, rules.quantityIncrement))
      problems.push(`Quantity must be a multiple of ${rules.quantityIncrement}.`);
  }
  if (!isDecimal(price)) problems.push("Limit price must be a number such as 5000.25.");
  else if (rules.tickSize && !isMultipleOf(price, rules.tickSize))
    problems.push(`Limit price must be a multiple of the tick, ${rules.tickSize}.`);
  return problems;
}
