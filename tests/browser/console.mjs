// Browser test of the console (run by tests/console/test_console_browser.py): Playwright drives
// Debian's Chromium through sign-in, the segment builder's live count, compose with a preview,
// launch and the live stats, saving a screenshot of each page.  Prints one JSON line.
//
//   node console.mjs '{"url", "key", "conditions", "expect", "screenshots"}'
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = JSON.parse(process.argv[2]);
const report = { ok: false, steps: [] };
const TIMEOUT = 20_000;

async function main() {
  mkdirSync(args.screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  report.browser_version = browser.version();
  try {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, timezoneId: "UTC" });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const errors = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    // Script errors, and any console API call that failed (a 401 page load at sign-in is expected).
    page.on("console", (msg) => {
      if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) errors.push(msg.text());
    });
    page.on("response", (res) => {
      if (res.url().includes("/console/api/") && res.status() >= 400) errors.push(`${res.status()} ${res.url()}`);
    });
    page.on("dialog", (dialog) => dialog.accept());
    const shot = async (name) => {
      await page.screenshot({ path: join(args.screenshots, `${name}.png`) });
      report.steps.push(name);
    };
    const url = (path) => new URL(path, args.url).toString();

    // Sign in: a wrong key first, then the admin key.
    await page.goto(url("/console/campaigns"));
    report.redirected_to_sign_in = new URL(page.url()).pathname === "/console/sign-in";
    await page.fill("#key", "hk_wrong");
    await page.click("#sign-in");
    report.bad_key_error = (await page.textContent(".alert")).trim();
    await shot("sign-in");
    await page.fill("#key", args.key);
    await Promise.all([page.waitForURL("**/console/campaigns"), page.click("#sign-in")]);
    report.cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }));
    report.cookie_visible_to_script = await page.evaluate(() => document.cookie.includes("herald_console"));

    // Build a segment, typing each condition, and wait for the live count.
    await page.click(".nav a[href=\"/console/segments\"]");
    await Promise.all([page.waitForURL("**/console/segments/new"), page.click("#new-segment")]);
    await page.fill("#segment-name", args.segment_name);
    for (const [i, c] of args.conditions.entries()) {
      if (i > 0) await page.click("#add-row");
      const row = page.locator(".filter-row").nth(i);
      await row.locator(".field").selectOption(c.field);
      if (c.key) await row.locator(".attr-key").pressSequentially(c.key, { delay: 20 });
      await row.locator(".op").selectOption(c.op);
      await row.locator(".value").pressSequentially(c.value, { delay: 20 });
    }
    await page.waitForSelector(`#segment-form[data-users="${args.expect.users}"]`);
    report.live_count = {
      users: await page.textContent("#count-users"),
      devices: await page.textContent("#count-devices"),
      opted_out: await page.textContent("#count-opted-out"),
      sample: await page.locator("#count-sample li").allTextContents(),
    };
    report.built_filter = JSON.parse(await page.getAttribute("#segment-form", "data-filter"));
    await shot("segment");
    await Promise.all([page.waitForURL(/\/console\/segments\/[0-9a-f-]+\?notice=saved/), page.click("#save-segment")]);
    report.segment_id = new URL(page.url()).pathname.split("/").pop();

    // Compose a campaign for it, with a translation, and read the personalised preview.
    await Promise.all([page.waitForURL("**/console/campaigns/new?segment=*"), page.click("text=Compose a campaign")]);
    await page.fill("#campaign-name", args.campaign.name);
    await page.fill("#title", args.campaign.title);
    await page.fill("#body", args.campaign.body);
    for (const [locale, title, body] of args.campaign.locales) {
      await page.click("#add-locale");
      const row = page.locator(".locale-row").last();
      await row.locator('input[name="locale"]').fill(locale);
      await row.locator('input[name="locale_title"]').fill(title);
      await row.locator('input[name="locale_body"]').fill(body);
    }
    await page.waitForFunction((want) => document.getElementById("preview-title").textContent === want, args.expect.preview_title);
    report.preview = { title: await page.textContent("#preview-title"), meta: await page.textContent("#preview-meta") };
    await shot("compose");
    await Promise.all([page.waitForURL(/\/console\/campaigns\/[0-9a-f-]+\?notice=saved/), page.click("#save-campaign")]);
    report.campaign_id = new URL(page.url()).pathname.split("/").pop();
    report.draft_preview = (await page.textContent(".push-title")).trim();
    await shot("campaign-draft");

    // Launch now and watch the stats until the campaign completes with every device delivered.
    await Promise.all([page.waitForURL("**?notice=launched"), page.click("#launch")]);
    const seen = new Set();
    const started = Date.now();
    while (Date.now() - started < 30_000) {
      const status = await page.getAttribute("#campaign-stats", "data-status");
      seen.add(status);
      const delivered = Number(await page.getAttribute("#campaign-stats", "data-delivered"));
      if (status === "completed" && delivered === args.expect.delivered) break;
      await page.waitForTimeout(200);
    }
    report.statuses_seen = [...seen];
    report.stats = {};
    for (const node of await page.locator("[data-stat]").all()) {
      report.stats[await node.getAttribute("data-stat")] = (await node.textContent()).trim();
    }
    report.badge = (await page.textContent("#campaign-status")).trim();
    report.chart_lines = await page.locator("#stats-chart polyline, #stats-chart circle").count();
    report.skip_reasons = await page.locator("#skip-reasons li").allTextContents();
    report.cancel_button_gone = (await page.locator("#cancel").count()) === 0;
    await page.waitForTimeout(500);
    await shot("campaign");

    await page.click(".nav a[href=\"/console/campaigns\"]");
    await page.waitForURL("**/console/campaigns");
    report.list_status = (await page.textContent(`#campaigns tr[data-status] .badge`)).trim();
    await shot("campaigns");
    await page.click(".nav a[href=\"/console/segments\"]");
    await page.waitForURL("**/console/segments");
    await shot("segments");

    // Sign out: the pages send us back to sign in.
    await Promise.all([page.waitForURL("**/console/sign-in?notice=signed-out"), page.click("#sign-out")]);
    await page.goto(url("/console/campaigns"));
    report.after_sign_out = new URL(page.url()).pathname;
    report.page_errors = errors;
    report.ok = true;
  } finally {
    await browser.close();
  }
}

main()
  .catch((err) => { report.error = String(err && err.stack ? err.stack : err); })
  .finally(() => {
    process.stdout.write(JSON.stringify(report) + "\n");
    process.exit(report.ok ? 0 : 1);
  });
