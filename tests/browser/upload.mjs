// A student in a real browser (Debian's Chromium via playwright-core): open the grading
// service through JupyterHub, log in at the Hub, upload a notebook with the service's own
// form, open the submission page and wait for the score.
//
// env: HUB_URL, PREFIX, HUB_USER, HUB_PASSWORD, NOTEBOOK (path), SCREENSHOT (path),
//      PLAYWRIGHT_DIR (where playwright-core is installed)
// prints one JSON line: {"loggedIn", "uploadText", "pageText"}
import { env, launch } from "./chromium.mjs";

const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(60_000);
  const service = env("HUB_URL") + env("PREFIX");
  // Not logged in: our page sends the browser through the Hub's login.
  await page.goto(service);
  await page.fill("input[name=username]", env("HUB_USER"));
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await Promise.all([page.waitForURL(service), page.click("[type=submit]")]);
  const loggedIn = await page.textContent("body");
  // Upload with the service's form (its script adds the XSRF header).
  await page.setInputFiles("#upload input[type=file]", env("NOTEBOOK"));
  await page.click("#upload button");
  await page.waitForFunction(() => document.getElementById("upload-result").textContent.length > 0);
  const uploadText = await page.textContent("#upload-result");
  // The list reloads; open the newest submission and wait for its score.
  await page.waitForSelector("tbody tr a");
  await page.click("tbody tr a");
  await page.waitForSelector("h2:has-text('Score')", { timeout: 120_000 });
  const pageText = await page.textContent("body");
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  console.log(JSON.stringify({ loggedIn, uploadText, pageText }));
} finally {
  await browser.close();
}
