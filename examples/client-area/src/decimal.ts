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
