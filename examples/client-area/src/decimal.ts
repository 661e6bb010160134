/**
 * Exact sums of the API's decimal strings ("-703.60"), without floats: each amount is
 * scaled to an integer (BigInt) at the larger number of fraction digits, added, and
 * written back.  Floats appear only where a value becomes a pixel position.
 */

function parse(value: string): { units: bigint; scale: number } {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(value.trim());
  if (!match) throw new Error(`not a decimal: ${value}`);
  const fraction = match[3] ?? "";
  const units = BigInt(`${match[2]}${fraction}`);
  return { units: match[1] ? -units : units, scale: fraction.length };
}

function format(units: bigint, scale: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = scale ? `.${digits.slice(digits.length - scale)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction}`;
}

/** a + b, with as many fraction digits as the longer of the two. */
export function addDecimal(a: string, b: string): string {
  const x = parse(a);
  const y = parse(b);
  const scale = Math.max(x.scale, y.scale);
  const sum = x.units * 10n ** BigInt(scale - x.scale) + y.units * 10n ** BigInt(scale - y.scale);
  return format(sum, scale);
}

/** The running totals of `values`, each exact: [v0, v0+v1, …]. */
export function runningTotals(values: string[]): string[] {
  const totals: string[] = [];
  let total = "0";
  for (const value of values) {
    total = addDecimal(total, value);
    totals.push(total);
  }
  return totals;
}

/** Both values as integers at one scale, so they compare and divide exactly. */
function aligned(a: string, b: string): [bigint, bigint] {
  const x = parse(a);
  const y = parse(b);
  const scale = Math.max(x.scale, y.scale);
  return [x.units * 10n ** BigInt(scale - x.scale), y.units * 10n ** BigInt(scale - y.scale)];
}

/** Whether `value` is a decimal string the API would take ("1", "-0.25"; no exponent). */
export function isDecimal(value: string): boolean {
  return /^-?\d+(?:\.\d+)?$/.test(value.trim());
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function compareDecimal(a: string, b: string): number {
  const [x, y] = aligned(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Whether `value` is a whole multiple of `step` (a step of 0 allows anything). */
export function isMultipleOf(value: string, step: string): boolean {
  const [x, y] = aligned(value, step);
  return y === 0n || x % y === 0n;
}
