// The course calendar in a real browser (Debian's Chromium via playwright-core): a member
// of course staff grants a student an extension with the assignment page's form, and the
// student reads their due date and their submission's credit on their own page.
//
// env: HUB_URL, PREFIX, STAFF_USER, STUDENT_USER, HUB_PASSWORD, SUBMISSION, SHOTS,
//      PLAYWRIGHT_DIR
// prints one JSON line: {"before", "done", "moved", "after", "log", "due", "lateness",
//                        "credited"}
import { env, launch } from "./chromium.mjs";

const browser = await launch();
const shots = env("SHOTS");
const service = env("HUB_URL") + env("PREFIX");

/** A fresh browser session logged in at the Hub as `user`, on `url`. */
async function loggedIn(user, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  await page.goto(url);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await Promise.all([page.waitForURL(url), page.click("[type=submit]")]);
  return page;
}

const counted = async (page, user) => {
  const row = page.locator("#counting tbody tr", { hasText: user }).first();
  return (await row.locator("td.counted").textContent()).trim();
};

try {
  const assignment = `${service}staff/assignments/demo/1/demo1`;
  const staff = await loggedIn(env("STAFF_USER"), assignment);
  await staff.waitForSelector("#extension-form");
  const before = await counted(staff, env("STUDENT_USER"));
  await staff.fill("#extension-form textarea[name=users]", env("STUDENT_USER"));
  await staff.fill("#extension-form input[name=days]", "365");
  await staff.fill("#extension-form input[name=reason]", "accommodation");
  await staff.locator("#extension-form").scrollIntoViewIfNeeded();
  await staff.screenshot({ path: `${shots}-form.png`, fullPage: true });
  await Promise.all([staff.waitForSelector("#done"), staff.click("#extend")]);
  const done = (await staff.textContent("#done")).trim();
  const moved = (await staff.textContent("#moved")).trim();
  await staff.goto(assignment);
  const after = await counted(staff, env("STUDENT_USER"));
  const log = (await staff.locator("#calendar-log tbody tr").first().textContent()).trim();
  await staff.locator("#calendar").scrollIntoViewIfNeeded();
  await staff.screenshot({ path: `${shots}-assignment.png`, fullPage: true });

  const page = `${service}submissions/${env("SUBMISSION")}`;
  const student = await loggedIn(env("STUDENT_USER"), page);
  await student.waitForSelector("#due");
  const text = async (sel) =>
    (await student.locator(sel).count()) ? (await student.textContent(sel)).trim() : null;
  await student.screenshot({ path: `${shots}-student.png`, fullPage: true });
  console.log(JSON.stringify({
    before, done, moved, after, log,
    due: await text("#due"),
    lateness: await text("#lateness"),
    credited: await text("#credited"),
  }));
} finally {
  await browser.close();
}
