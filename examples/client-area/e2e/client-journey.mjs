// The client journey in a real browser, offline: Debian's chromium driven by
// playwright-core, every host but 127.0.0.1 unresolvable and any request off the
// loopback recorded (and failed).  Run by tests/test_client_area_browser.py, which
// passes its inputs as environment variables and reads the JSON printed on stdout.
//   CLIENT_AREA_URL  the page, with the client token in the fragment
//   CHROMIUM         the chromium binary
//   EXPECTED         JSON {"platform number": "balance text"} the gateway answered
//   SCREENSHOT_DIR   where the screenshots go
//   JOURNEY          "orders" (default): accounts, axe-core, an order placed and cancelled;
//                    "partial": accounts, and the rows of a platform that is down;
//                    "resume": an order placed, the socket cut, the order cancelled while
//                    it is down, then the reconnect: the blotter and every event seen;
//                    "backoffice" (manager token): a deposit to TARGET ("platform number")
//                    submitted by a double click (UNKNOWN set: by a click whose answer is
//                    lost, then the Retry the page offers)
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const env = process.env;
const expected = JSON.parse(env.EXPECTED);
const journey = env.JOURNEY ?? "orders";
const report = { balances: {}, failures: [], banner: null, order: null, history: null, offLoopback: [], axe: null };
const STEP_MS = 60_000;

async function accounts(page) {
  for (const key of Object.keys(expected)) {
    const [platform, number] = key.split(" ");
    const cell = page.locator(`tr[data-platform="${platform}"][data-account="${number}"] td.balance`);
    await cell.waitFor();
    report.balances[key] = (await cell.textContent()).trim();
  }
}

async function partial(page) {
  const rows = page.locator("tr.account-error");
  await rows.first().waitFor();
  for (const row of await rows.all()) {
    const platform = (await row.locator(".badge").textContent()).trim();
    const text = (await row.locator("td").nth(1).textContent()).trim();
    report.failures.push({ platform, text });
  }
  report.banner = (await page.locator(".partial").textContent()).trim();
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/client-area-partial.png`, fullPage: true });
}

async function orders(page) {
  // Accessibility basics on the loaded page.
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  report.axe = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  // Wait for the stream to be live (its snapshot arrived), so no event can be missed.
  await page.locator('table.blotter[data-live="true"]').waitFor();
  await page.getByRole("button", { name: "Place order" }).click();
  const sent = page.locator(".order-message", { hasText: /^Order \S+ sent$/ });
  await sent.waitFor();
  const orderId = (await sent.textContent()).trim().split(" ")[1];
  report.order = orderId;
  const row = page.locator(`tr[data-order="${orderId}"]`);
  await row.locator("td.status", { hasText: /^WORKING$/ }).waitFor();
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/client-area-working.png`, fullPage: true });
  await row.getByRole("button", { name: `Cancel ${orderId}` }).click();
  await row.locator("td.status", { hasText: /^CANCELLED$/ }).waitFor();
  report.history = (await row.locator("td.history").textContent()).trim();
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/client-area.png`, fullPage: true });
}

async function resume(page) {
  await page.locator('table.blotter[data-live="true"]').waitFor();
  await page.getByRole("button", { name: "Place order" }).click();
  const sent = page.locator(".order-message", { hasText: /^Order \S+ sent$/ });
  await sent.waitFor();
  const orderId = (await sent.textContent()).trim().split(" ")[1];
  report.order = orderId;
  const row = page.locator(`tr[data-order="${orderId}"]`);
  await row.locator("td.status", { hasText: /^WORKING$/ }).waitFor();
  // The socket goes down and stays down until the cancel is answered: CANCELLED can
  // only reach the page by resuming.
  await page.evaluate(() => window.__bg.dropSocket());
  const cancelled = page.waitForResponse(
    (r) => r.url().endsWith("/graphql") && (r.request().postData() ?? "").includes("CancelOrder"),
  );
  await row.getByRole("button", { name: `Cancel ${orderId}` }).click();
  await cancelled;
  report.statusWhileDown = (await row.locator("td.status").textContent()).trim();
  await page.evaluate(() => window.__bg.reconnect());
  await row.locator("td.status", { hasText: /^CANCELLED$/ }).waitFor();
  report.history = (await row.locator("td.history").textContent()).trim();
  report.events = await page.evaluate(() => window.__bg.events);
  report.resumes = await page.evaluate(() => window.__bg.resumes);
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/client-area-resumed.png`, fullPage: true });
}

async function backoffice(page) {
  const [platform, number] = env.TARGET.split(" ");
  await page.locator(`.partner-accounts tr[data-platform="${platform}"][data-account="${number}"]`).waitFor();
  await page.getByLabel("Account").selectOption({ label: env.TARGET });
  await page.getByLabel("Amount").fill(env.AMOUNT);
  const answers = [];
  page.on("response", (r) => {
    if ((r.request().postData() ?? "").includes("mutation Deposit")) answers.push(r.finished());
  });
  if (env.UNKNOWN) {
    // The platform applies the deposit but its answer is lost: the page must say so
    // and offer the retry with the same key, which settles it.
    await page.getByRole("button", { name: "Deposit" }).click();
    const unknown = page.locator(".deposit-unknown");
    await unknown.waitFor();
    report.unknown = (await unknown.textContent()).trim();
    await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office-unknown.png`, fullPage: true });
    await page.getByRole("button", { name: "Retry deposit" }).click();
  } else {
    await page.getByRole("button", { name: "Deposit" }).dblclick();
  }
  await page.locator(".deposit-done").waitFor();
  await Promise.all(answers);
  report.depositRequests = answers.length;
  report.deposit = (await page.locator(".deposit-done").textContent()).trim();
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  report.axe = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/back-office.png`, fullPage: true });
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
  await page.goto(env.CLIENT_AREA_URL);
  if (journey !== "backoffice") await accounts(page);
  await ({ partial, resume, orders, backoffice }[journey] ?? orders)(page);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
