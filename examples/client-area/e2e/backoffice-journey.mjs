// The back office in a real browser, offline (manager token): Debian's chromium driven
// by playwright-core, every host but 127.0.0.1 unresolvable and any request off the
// loopback recorded (and failed).  Run by tests/test_client_area_backoffice_browser.py,
// which passes its inputs as environment variables, makes the sandboxes misbehave
// meanwhile, and reads the JSON printed on stdout.
//   BACKOFFICE_URL  the page, with the manager token in the fragment
//   CHROMIUM        the chromium binary
//   SCREENSHOT_DIR  where the screenshots go
//   EMAIL           the new cTrader trader's email (its link-user step is made to fail)
//   TARGET          "platform number" of the account money moves on; AMOUNT, WITHDRAW,
//                   CREDIT, BONUS
//   DX_TRADER       the DXtrade trader deactivated, then reactivated
//   SIGNAL_DIR      the page writes "reactivated" there, then waits for "dxtrade-down"
//   JOURNEY         "partial": only the partner, with a platform down (see partial())
// The journey: create a trader (a failed step, resumed) → a deposit by double click →
// its one movement (and one replay) in the audit trail → a withdrawal whose answer is
// lost (outcome unknown), retried with its key → the DXtrade trader deactivated and
// reactivated → DXtrade down: a deposit not delivered; axe-core's WCAG A/AA rules.
import { existsSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const env = process.env;
const report = { offLoopback: [], requests: {}, createKeys: [] };
const STEP_MS = 60_000;

async function axe(page) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
}

async function steps(page, scope) {
  return page
    .locator(`${scope} li[data-step]`)
    .evaluateAll((items) => items.map((li) => [li.dataset.step, li.dataset.succeeded === "true"]));
}

/** The audit rows of an idempotency key, as [action, outcome, amount, outcome shown]. */
async function auditRows(page, key) {
  return page
    .locator(`tr.audit-row[data-key="${key}"]`)
    .evaluateAll((rows) =>
      rows.map((tr) => [
        tr.dataset.action,
        tr.dataset.outcome,
        tr.querySelector("td.amount").textContent.trim(),
        tr.cells[4].textContent.trim(),
      ]),
    );
}

async function journey(page) {
  const [platform, number] = env.TARGET.split(" ");
  await page.locator(`.partner-accounts tr[data-platform="${platform}"][data-account="${number}"]`).waitFor();
  const answers = [];
  const named = (request) =>
    ["CreateTrader", "Deposit", "Withdraw", "DeactivateTrader", "ReactivateTrader"].find((name) =>
      (request.postData() ?? "").includes(`mutation ${name}(`),
    );
  page.on("request", (request) => {
    const name = named(request);
    if (name) report.requests[name] = (report.requests[name] ?? 0) + 1;
    if (name === "CreateTrader") {
      report.createKeys.push(JSON.parse(request.postData()).variables.input.idempotencyKey ?? null);
    }
  });
  page.on("response", (response) => {
    if (named(response.request())) answers.push(response.finished());
  });

  // 1. A new cTrader trader; the test fails its link-user step, the page offers to resume.
  const create = page.locator("form.create-trader");
  await create.getByLabel("Platform").selectOption("ctrader");
  await create.getByLabel("Email").fill(env.EMAIL);
  await create.getByLabel("Name").fill("Back Office Trader");
  await create.getByRole("button", { name: "Create trader" }).click();
  await page.locator(".create-stopped li[data-succeeded=false]").waitFor();
  report.stoppedSteps = await steps(page, ".create-trader-result");
  report.stopped = (await page.locator(".create-trader-result p").textContent()).trim();
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office-stopped.png`, fullPage: true });
  await create.getByRole("button", { name: "Resume create trader" }).click();
  await page.locator(".create-done").waitFor();
  report.resumedSteps = await steps(page, ".create-trader-result");
  report.created = (await page.locator(".create-done p").textContent()).trim();

  // 2. A deposit by double click: both clicks send the submission's one key.
  const money = page.locator("form.money-form");
  await money.getByLabel("Operation").selectOption("deposit");
  await money.getByLabel("Account").selectOption({ label: env.TARGET });
  await money.getByLabel("Amount").fill(env.AMOUNT);
  await money.getByRole("button", { name: "Deposit" }).dblclick();
  const deposited = page.locator(".deposit-done");
  await deposited.waitFor();
  await Promise.all(answers);
  report.doubleClickRequests = report.requests.Deposit;
  report.deposit = (await deposited.textContent()).trim();
  report.depositKey = await deposited.getAttribute("data-key");

  // 3. The audit trail: one movement under that key (and the double click's replay).
  const rows = page.locator(`tr.audit-row[data-key="${report.depositKey}"]`);
  await rows.nth(1).waitFor();
  report.depositAudit = await auditRows(page, report.depositKey);
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office-audit.png`, fullPage: true });

  // 4. A withdrawal from the same account whose answer is lost on its way back: the
  // gateway and cTrader did it, the connection to the page dropped.  The page cannot
  // know; it says so, keeps the key, and its Retry settles it as the same movement.
  let lost = 0;
  await page.route("**/graphql", async (route) => {
    if (lost === 0 && (route.request().postData() ?? "").includes("mutation Withdraw(")) {
      lost += 1;
      await route.fetch(); // the gateway receives it and answers ...
      return route.abort("connectionreset"); // ... and the answer never arrives
    }
    return route.fallback();
  });
  await money.getByLabel("Operation").selectOption("withdraw");
  await money.getByLabel("Account").selectOption({ label: env.TARGET });
  await money.getByLabel("Amount").fill(env.WITHDRAW);
  await money.getByRole("button", { name: "Withdraw" }).click();
  const unknown = page.locator(".withdraw-unknown");
  await unknown.waitFor();
  report.withdrawUnknown = (await unknown.textContent()).trim();
  report.withdrawKey = await unknown.getAttribute("data-key");
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office-unknown.png`, fullPage: true });
  await money.getByRole("button", { name: "Retry withdraw" }).click();
  const withdrawn = page.locator(".withdraw-done");
  await withdrawn.waitFor();
  report.withdraw = (await withdrawn.textContent()).trim();
  report.retryKey = await withdrawn.getAttribute("data-key");
  await page.locator(`tr.audit-row[data-key="${report.withdrawKey}"]`).nth(1).waitFor();
  report.withdrawAudit = await auditRows(page, report.withdrawKey);

  // 5. Credit and bonus changes on the same account, each with its own key.
  for (const [operation, amount] of [
    ["credit", env.CREDIT],
    ["bonus", env.BONUS],
  ]) {
    await money.getByLabel("Operation").selectOption(operation);
    await money.getByLabel("Account").selectOption({ label: env.TARGET });
    await money.getByLabel("Amount").fill(amount);
    await money.getByRole("button", { name: `Change ${operation}` }).click();
    const done = page.locator(`.${operation}-done`);
    await done.waitFor();
    report[operation] = (await done.textContent()).trim();
  }

  // 6. QORT's onboarding ends with enableTrading.
  await page.getByRole("button", { name: "Enable trading on QORT" }).click();
  const enabled = page.locator(".enable-done");
  await enabled.waitFor();
  report.enabled = (await enabled.textContent()).trim();

  // 7. The DXtrade trader deactivated, then reactivated.
  const trader = page.locator(`table.traders tr[data-platform="dxtrade"][data-trader="${env.DX_TRADER}"]`);
  await trader.getByRole("button", { name: `Deactivate trader ${env.DX_TRADER}` }).click();
  await page.locator('.trader-done[data-action="deactivate"]').waitFor();
  report.deactivateSteps = await steps(page, ".trader-result");
  await trader.locator("td.trader-status", { hasText: /^(DISABLED|INACTIVE)$/ }).waitFor();
  report.statusAfterDeactivate = (await trader.locator("td.trader-status").textContent()).trim();
  await trader.getByRole("button", { name: `Reactivate trader ${env.DX_TRADER}` }).click();
  await page.locator('.trader-done[data-action="reactivate"]').waitFor();
  report.reactivateSteps = await steps(page, ".trader-result");
  await trader.locator("td.trader-status", { hasText: /^ACTIVE$/ }).waitFor();
  report.statusAfterReactivate = "ACTIVE";
  await page.locator('tr.audit-row[data-action="reactivateTrader"]').first().waitFor();
  report.traderAudit = await page
    .locator('tr.audit-row[data-action$="activateTrader"]')
    .evaluateAll((rows) => rows.map((tr) => [tr.dataset.action, tr.dataset.outcome]));

  // 8. DXtrade goes down (the test stops it once told the page got here): a deposit to
  // its account is refused before anything is sent, and the page says "not delivered".
  const dxAccount = await page
    .locator('.partner-accounts tr[data-platform="dxtrade"][data-status="FULL_TRADING"]')
    .last()
    .getAttribute("data-account");
  writeFileSync(`${env.SIGNAL_DIR}/reactivated`, "");
  while (!existsSync(`${env.SIGNAL_DIR}/dxtrade-down`)) await new Promise((r) => setTimeout(r, 20));
  await money.getByLabel("Operation").selectOption("deposit");
  await money.getByLabel("Account").selectOption({ label: `dxtrade ${dxAccount}` });
  await money.getByLabel("Amount").fill(env.AMOUNT);
  await money.getByRole("button", { name: "Deposit" }).click();
  const notDelivered = page.locator(".deposit-notdelivered");
  await notDelivered.waitFor();
  report.notDelivered = (await notDelivered.textContent()).trim();
  report.notDeliveredKey = await notDelivered.getAttribute("data-key");
  await page.locator(`tr.audit-row[data-key="${report.notDeliveredKey}"]`).waitFor();
  report.notDeliveredAudit = await page
    .locator(`tr.audit-row[data-key="${report.notDeliveredKey}"]`)
    .evaluateAll((rows) => rows.map((tr) => [tr.dataset.action, tr.dataset.outcome, tr.cells[4].textContent.trim()]));

  report.axe = await axe(page);
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office.png`, fullPage: true });
}

/** JOURNEY=partial: a platform is down; its accounts' and traders' rows carry the error. */
async function partial(page) {
  const accounts = page.locator(".partner-accounts tr.account-error");
  const traders = page.locator("table.traders tr.trader-error");
  await accounts.first().waitFor();
  await traders.first().waitFor();
  const rows = (locator) =>
    locator.evaluateAll((trs) =>
      trs.map((tr) => [tr.querySelector(".badge").textContent.trim(), tr.querySelectorAll("td")[1].textContent.trim()]),
    );
  report.accountErrors = await rows(accounts);
  report.traderErrors = await rows(traders);
  report.answered = await page
    .locator(".partner-accounts tr[data-account]")
    .evaluateAll((trs) => trs.map((tr) => `${tr.dataset.platform} ${tr.dataset.account}`));
  report.banners = await page.locator(".partial").allTextContents();
  report.axe = await axe(page);
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office-partial.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(STEP_MS);
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:") return route.continue();
    report.offLoopback.push(url.toString());
    return route.abort();
  });
  await page.goto(env.BACKOFFICE_URL);
  await (env.JOURNEY === "partial" ? partial : journey)(page);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
