// The client journey in a real browser, offline: Debian's chromium driven by
// playwright-core, every host but 127.0.0.1 unresolvable and any request off the
// loopback recorded (and failed).  Run by tests/test_client_area_browser.py, which
// passes its inputs as environment variables and reads the JSON printed on stdout.
//   CLIENT_AREA_URL  the page, with the client token in the fragment
//   CHROMIUM         the chromium binary
//   EXPECTED         JSON {"platform number": "balance text"} the gateway answered
//   SCREENSHOT_DIR   where the screenshots go
//   JOURNEY          "client" (default; "orders" too): accounts, an order placed and
//                    cancelled, an order of FILL ({"quantity", "price"}: crossing the
//                    market) seen FILLED with its fills read back, then the analytics of
//                    ANALYTICS ({"account", "from", "to"}:
//                    the plotted marks read back), positions and deals, a report requested
//                    for REPORT ({"from", "to"}) and every file downloaded (with the account
//                    each row says it covers), the tax of TAX ({"amount", "currency",
//                    "date"}: a withdrawal on that day, then {"from", "to"}: a period);
//                    axe-core on each page; then each page
//                    at phone width (390×844): overflow and unreachable controls listed;
//                    "sse": the WebSocket cannot be opened (every socket goes to a closed
//                    port), so the blotter's orderEvents must come over SSE;
//                    "partial": accounts, and the rows of a platform that is down;
//                    "resume": an order placed, the socket cut, the order cancelled while
//                    it is down, then the reconnect: the blotter and every event seen;
//                    "backoffice" (manager token): a deposit to TARGET ("platform number")
//                    submitted by a double click (UNKNOWN set: by a click whose answer is
//                    lost, then the Retry the page offers)
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const env = process.env;
const expected = JSON.parse(env.EXPECTED);
const journey = env.JOURNEY ?? "client";
const report = { balances: {}, failures: [], banner: null, order: null, history: null, offLoopback: [], axe: null };
const shot = (page, name) => page.screenshot({ path: `${env.SCREENSHOT_DIR}/${name}.png`, fullPage: true });

/** axe-core's WCAG 2 A/AA violations of the page as it is now. */
async function axe(page) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) {
    await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  }
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
}

/** Each page link's title, and the start of the heading its page shows once loaded. */
const HEADINGS = {
  "Accounts & orders": "Accounts of",
  Analytics: "Analytics",
  "Positions & deals": "Positions and deals",
  Reports: "Reports",
  Tax: "Tax",
};

/** Open a client page by its link in the page navigation; wait for its heading. */
async function open(page, title) {
  await page.getByRole("navigation", { name: "Client area" }).getByRole("link", { name: title }).click();
  await page.getByRole("heading", { level: 2, name: new RegExp(`^${HEADINGS[title]}`) }).waitFor();
}
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

async function orders(page, screenshot = "client-area") {
  // Accessibility basics on the loaded page.
  report.axe = await axe(page);
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
  await shot(page, screenshot);
}

/** An order that crosses the market fills (QST's sandbox: in parts); its fills read back. */
async function fills(page) {
  const want = JSON.parse(env.FILL);
  const form = page.locator("form.order-form");
  // The platform's order rules were asked for; where it has none the form says nothing.
  await page.locator('form.order-form[data-rules="unavailable"], form.order-form[data-rules="checked"]').waitFor();
  await page.getByLabel("Quantity").fill(want.quantity);
  await page.getByLabel("Limit price").fill(want.price);
  await page.getByRole("button", { name: "Place order" }).click();
  const sent = page.locator(".order-message", { hasText: /^Order \S+ sent$/ });
  await sent.waitFor();
  const orderId = (await sent.textContent()).trim().split(" ")[1];
  const row = page.locator(`tr[data-order="${orderId}"]`);
  await row.locator("td.status", { hasText: /^FILLED$/ }).waitFor();
  await row.locator("details.fills summary").click();
  report.fills = {
    order: orderId,
    rules: await form.getAttribute("data-rules"),
    problems: await page.locator(".order-problems li").count(),
    alerts: await page.getByRole("alert").count(),
    quantity: (await row.locator("td.quantity").textContent()).trim(),
    filled: await row.locator("td.quantity").getAttribute("data-filled"),
    summary: (await row.locator("details.fills summary").textContent()).trim(),
    history: (await row.locator("td.history").textContent()).trim(),
    fills: await row.locator("details.fills li").evaluateAll((items) =>
      items.map((li) => ({ id: li.dataset.fill, quantity: li.dataset.quantity, price: li.dataset.price })),
    ),
  };
  report.axePages.fills = await axe(page);
  await shot(page, "client-area-fills");
}

/** What a chart shows: each mark's value as sent and where it was drawn. */
function readCharts() {
  const chart = (name) => document.querySelector(`[data-chart="${name}"]`);
  const bars = (name) =>
    [...chart(name).querySelectorAll("g.bar")].map((g) => ({
      label: g.dataset.label,
      value: g.dataset.value,
      width: Number(g.querySelector("rect").getAttribute("width")),
      text: g.querySelector(".bar-text").textContent,
    }));
  return {
    realized: document.querySelector(".figures .realized").textContent.trim(),
    winloss: document.querySelector(".figures .winloss").textContent.trim(),
    pnl: [...chart("pnl").querySelectorAll("circle.point")].map((c) => ({
      at: c.dataset.at,
      value: c.dataset.value,
      x: Number(c.getAttribute("cx")),
      y: Number(c.getAttribute("cy")),
    })),
    winlossBars: bars("winloss"),
    volume: bars("volume"),
    opened: bars("opened"),
    category: bars("category"),
    assetclass: bars("assetclass"),
    copy: [...document.querySelectorAll(".copy-subaccounts tbody tr")].map((tr) =>
      [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()),
    ),
  };
}

async function analytics(page) {
  const want = JSON.parse(env.ANALYTICS);
  await open(page, "Analytics");
  await page.getByLabel("Account").selectOption({ label: want.account });
  await page.getByLabel("From").fill(want.from);
  await page.getByLabel("To (included)").fill(want.to);
  await page.getByRole("button", { name: "Show analytics" }).click();
  await page.locator('.analytics[data-ready="true"] [data-chart="pnl"]').waitFor();
  report.analytics = await page.evaluate(readCharts);
  report.axePages.analytics = await axe(page);
  await shot(page, "client-area-analytics");
}

async function positions(page) {
  const want = JSON.parse(env.ANALYTICS);
  await open(page, "Positions & deals");
  await page.getByLabel("Account").selectOption({ label: want.account });
  await page.getByLabel("From").fill(want.from);
  await page.getByLabel("To (included)").fill(want.to);
  await page.getByRole("button", { name: "Show deals" }).click();
  await page.locator("table.positions").waitFor();
  await page.locator(`table.deals caption`, { hasText: `Deals ${want.from} to ${want.to}` }).waitFor();
  report.positions = await page.evaluate(() => ({
    positions: [...document.querySelectorAll("table.positions tbody tr")].map((tr) => tr.dataset.position),
    deals: [...document.querySelectorAll("table.deals tbody tr")].map((tr) => [
      tr.dataset.deal,
      tr.querySelector("td.pnl").textContent.trim(),
    ]),
  }));
  report.axePages.positions = await axe(page);
  await shot(page, "client-area-positions");
}

async function reports(page) {
  const want = JSON.parse(env.REPORT);
  await open(page, "Reports");
  await page.getByLabel("Format").selectOption("CSV");
  await page.getByLabel("From").fill(want.from);
  await page.getByLabel("To (included)").fill(want.to);
  // Every status each report's row shows, in order, as the page re-reads them.
  await page.evaluate(() => {
    window.__statuses = {};
    const record = () => {
      for (const tr of document.querySelectorAll("tr[data-report]")) {
        const status = tr.querySelector("td.status").textContent.trim();
        const seen = (window.__statuses[tr.dataset.report] ??= []);
        if (seen[seen.length - 1] !== status) seen.push(status);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByRole("button", { name: "Request report" }).click();
  const requested = page.locator(".report-message", { hasText: /^Requested / });
  await requested.waitFor();
  const ids = (await requested.textContent()).trim().replace(/^Requested /, "").split(", ");
  report.files = {};
  for (const id of ids) {
    const row = page.locator(`tr[data-report="${id}"]`);
    // Seen as the page shows it until READY (the sandbox takes half a second).
    await row.locator("td.status", { hasText: /^READY$/ }).waitFor();
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      row.getByRole("button", { name: `Download ${id}` }).click(),
    ]);
    report.files[id] = { name: download.suggestedFilename(), text: await readFile(await download.path(), "utf8") };
  }
  report.reportIds = ids;
  report.reportCovers = Object.fromEntries(
    await Promise.all(
      ids.map(async (id) => [id, (await page.locator(`tr[data-report="${id}"] td.covers`).textContent()).trim()]),
    ),
  );
  report.reportStates = await page.evaluate(() => window.__statuses);
  report.axePages.reports = await axe(page);
  await shot(page, "client-area-reports");
}

async function tax(page) {
  const want = JSON.parse(env.TAX);
  await open(page, "Tax");
  const result = async (kind) => {
    await page.locator(`.tax-result[data-kind="${kind}"]`).waitFor();
    return {
      base: (await page.locator(".tax-base").textContent()).trim(),
      amount: (await page.locator(".tax-amount").textContent()).trim(),
    };
  };
  await page.getByLabel("Amount").fill(want.amount);
  await page.getByLabel("Currency").fill(want.currency);
  await page.getByLabel("Withdrawal date").fill(want.date);
  await page.getByRole("button", { name: "Calculate tax" }).click();
  report.tax = { withdrawal: await result("WITHDRAWAL") };
  await page.getByLabel("Calculate").selectOption("PERIOD");
  await page.getByLabel("From").fill(want.from);
  await page.getByLabel("To (included)").fill(want.to);
  await page.getByRole("button", { name: "Calculate tax" }).click();
  report.tax.period = await result("PERIOD");
  report.axePages.tax = await axe(page);
  await shot(page, "client-area-tax");
}

/** At phone width: anything wider than the screen, and controls one cannot reach. */
function phoneCheck() {
  const width = document.documentElement.clientWidth;
  const name = (e) => `${e.tagName.toLowerCase()}${e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : ""}`;
  const wide = [...document.querySelectorAll("body *")]
    .filter((e) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && (r.right > width + 0.5 || r.left < -0.5);
    })
    .map(name);
  const unreachable = [];
  let controls = 0;
  for (const e of document.querySelectorAll("a[href], button, input, select")) {
    const r0 = e.getBoundingClientRect();
    if (r0.width === 0 || r0.height === 0) continue;
    controls += 1;
    e.scrollIntoView({ block: "center", inline: "nearest" });
    const r = e.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const onScreen = r.left >= -0.5 && r.right <= width + 0.5;
    if (!onScreen || !(hit === e || e.contains(hit) || (hit && hit.control === e))) {
      unreachable.push(`${name(e)} ${(e.textContent || e.getAttribute("aria-label") || "").trim()}`);
    }
  }
  return { scrollWidth: document.documentElement.scrollWidth, width, wide, unreachable, controls };
}

async function phone(page) {
  await page.setViewportSize({ width: 390, height: 844 });
  report.phone = {};
  const pages = [
    ["accounts", "Accounts & orders", 'table.blotter[data-live="true"]'],
    ["analytics", "Analytics", '.analytics[data-ready="true"]'],
    ["positions", "Positions & deals", "table.deals"],
    ["reports", "Reports", "table.reports tbody tr"],
    ["tax", "Tax", "form.toolbar"],
  ];
  for (const [key, title, ready] of pages) {
    await open(page, title);
    await page.locator(ready).first().waitFor();
    report.phone[key] = await page.evaluate(phoneCheck);
    report.axePages[`${key}-phone`] = await axe(page);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, `client-area-phone-${key}`);
  }
}

async function client(page) {
  report.axePages = {};
  // STEPS (e.g. "reports,tax") runs only those, when working on one page.
  const steps = (env.STEPS ?? "orders,fills,analytics,positions,reports,tax,phone").split(",");
  for (const step of steps) {
    await { orders, fills, analytics, positions, reports, tax, phone }[step](page);
    if (step === "orders") report.axePages.accounts = report.axe;
  }
  report.transport = await page.evaluate(() => window.__bg.transport);
}

async function sse(page) {
  // The order journey with no WebSocket: the blotter's live states must come over SSE.
  await orders(page, "client-area-sse");
  report.transport = await page.evaluate(() => window.__bg.transport);
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
  if (journey === "sse") {
    // As if a proxy refused WebSocket upgrades: every socket is opened to a closed port.
    await page.addInitScript(() => {
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(_url, protocols) {
          super("ws://127.0.0.1:9/graphql", protocols);
        }
      };
    });
  }
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:") return route.continue();
    report.offLoopback.push(url.toString());
    return route.abort();
  });
  // Subscriptions sent as HTTP streams (GraphQL over SSE), by operation name.
  report.streams = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/graphql") && (r.headers()["accept"] ?? "").includes("text/event-stream")) {
      const query = JSON.parse(r.postData() ?? "{}").query ?? "";
      report.streams.push((/subscription\s+(\w+)/.exec(query) ?? [null, query.slice(0, 40)])[1]);
    }
  });
  await page.goto(env.CLIENT_AREA_URL);
  if (journey !== "backoffice") await accounts(page);
  try {
    await ({ partial, resume, orders: client, client, sse, backoffice }[journey] ?? client)(page);
  } catch (error) {
    // What the page showed when a step timed out, beside the error.
    await shot(page, "failure").catch(() => {});
    throw error;
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
