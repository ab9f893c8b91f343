// Course staff in a real browser (Debian's Chromium via playwright-core): log in at the
// Hub, open the grading service's staff dashboard.
//
// env: HUB_URL, PREFIX, HUB_USER, HUB_PASSWORD, PHASE, SHOTS (path prefix), PLAYWRIGHT_DIR
//   PHASE=watch: reload the overview until nothing waits or is being graded (at most
//                3 minutes); prints {"samples": [{"waiting", "grading", "dead"}...]}
//   PHASE=act:   open the assignment, its score distribution, a dead submission, press
//                "Regrade this submission" (accepting the confirmation), then download
//                the grades CSV; prints {"charts", "distribution", "done", "csv", "regraded"}
import { readFileSync } from "node:fs";
import { env, launch } from "./chromium.mjs";

const browser = await launch();
const shots = env("SHOTS");
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page.setDefaultTimeout(60_000);
  const service = env("HUB_URL") + env("PREFIX");
  const dashboard = `${service}staff`;
  // Not logged in: the page sends the browser through the Hub's login.
  await page.goto(dashboard);
  await page.fill("input[name=username]", env("HUB_USER"));
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await Promise.all([page.waitForURL(dashboard), page.click("[type=submit]")]);

  if (env("PHASE") === "watch") {
    const samples = [];
    const deadline = Date.now() + 180_000;
    for (;;) {
      const cell = async (sel) =>
        Number((await page.locator(`#assignments tbody tr td${sel}`).first().textContent()).trim());
      const s = { waiting: await cell(".waiting"), grading: await cell(":nth-child(5)"), dead: await cell(".dead") };
      samples.push(s);
      if (samples.length === 1) await page.screenshot({ path: `${shots}-queue.png`, fullPage: true });
      if ((s.waiting === 0 && s.grading === 0) || Date.now() > deadline) break;
      await page.waitForTimeout(1000);
      await page.reload();
    }
    console.log(JSON.stringify({ samples }));
  } else {
    await page.click("#assignments tbody tr td a");
    await page.waitForSelector("#distribution");
    const charts = await page.locator("figure.chart svg").count();
    await page.locator("#distribution").scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${shots}-assignment.png`, fullPage: true });
    const distribution = await page.locator("#distribution + p").textContent();
    const assignment = page.url();
    // A dead submission: its page, then the button (a confirmation dialog first).
    await page.click("#dead + table tbody tr td a");
    await page.waitForSelector("#regrade-one");
    const regraded = Number(new URL(page.url()).pathname.split("/").pop());
    page.once("dialog", (d) => d.accept());
    await Promise.all([page.waitForSelector("#done"), page.click("#regrade-one")]);
    const done = await page.textContent("#done");
    // The grades CSV, as the browser downloads it.
    await page.goto(assignment);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv-latest")]);
    const csv = readFileSync(await download.path(), "utf8");
    console.log(JSON.stringify({ charts, distribution, done, csv, regraded }));
  }
} finally {
  await browser.close();
}
