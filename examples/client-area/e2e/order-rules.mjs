// The order form's rule check (src/orderRules.ts) run on rules an instrument query
// answered, outside a browser: esbuild (vite's) compiles the module, then each case of
// CASES ([{"quantity", "price"}]) is checked against RULES (an `instruments` entry).
// Prints [[problem, ...], ...], one list per case.  Run by tests/test_client_area_browser.py.
import { build } from "esbuild";

const bundle = await build({
  entryPoints: [new URL("../src/orderRules.ts", import.meta.url).pathname],
  bundle: true,
  format: "esm",
  write: false,
});
const source = bundle.outputFiles[0].text;
const { ruleProblems } = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
const rules = JSON.parse(process.env.RULES);
const cases = JSON.parse(process.env.CASES);
console.log(JSON.stringify(cases.map((c) => ruleProblems(rules, c.quantity, c.price))));
