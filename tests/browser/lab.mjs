// A student in JupyterLab 4 or Notebook 7 (Debian's Chromium via playwright-core): log in
// at the Hub, open a notebook in their own single-user server, optionally type into an
// answer cell, press the toolbar's Submit button and read the grading dialog.
//
// env: HUB_URL, HUB_USER, HUB_PASSWORD, UI ("lab" or "notebook"), NOTEBOOK (file name in
//      the user's home), EXPECT ("score": wait for the score; "message": wait for a
//      sentence or an error), EDIT (optional text typed into the answer cell of q2 first),
//      SHOTS (path prefix for screenshots), PLAYWRIGHT_DIR
// prints one JSON line: {"dialog", "state", "score", "questions", "feedback", "counts",
//                        "edx", "link", "error", "buttonTitle"}
import { env, launch } from "./chromium.mjs";

const browser = await launch();
const shots = env("SHOTS");
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(90_000);
  const hub = env("HUB_URL");
  const user = env("HUB_USER");
  await page.goto(`${hub}/hub/login`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  // The Hub starts the user's server (or finds it running) and sends the browser there.
  await Promise.all([
    page.waitForURL(new RegExp(`/user/${user}/`), { timeout: 120_000 }),
    page.click("[type=submit]"),
  ]);
  const nb = env("NOTEBOOK");
  // ?reset: a fresh workspace, not the tabs of the previous run.
  const url = env("UI") === "lab"
    ? `${hub}/user/${user}/lab/tree/${nb}?reset`
    : `${hub}/user/${user}/notebooks/${nb}`;
  await page.goto(url);
  // The open notebook's own toolbar button (other tabs have theirs, hidden).
  const button = page.locator(".otter-submit-button:visible").first();
  await button.waitFor({ state: "visible" });
  await page.locator(".jp-Notebook:visible .jp-Cell").first().waitFor({ state: "visible" });
  if (process.env.EDIT) {
    // Unsaved work: Submit must save it first.
    // The student's answer cell for q2 (otter's own cells are read-only).
    const cell = page.locator(".jp-Notebook:visible .jp-CodeCell", { hasText: "def square" }).first();
    await cell.locator(".cm-content").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.insertText(`  ${process.env.EDIT}`);
    await cell.getByText(process.env.EDIT).waitFor();
  }
  // JupyterLab's "get notified about Jupyter news?" toast: no, so it covers nothing.
  const noNews = page.getByRole("button", { name: "No", exact: true });
  if (await noNews.isVisible().catch(() => false)) await noNews.click();
  // Before pressing: the due date beside the button, when the assignment has one.
  const dueLabel = await page
    .waitForFunction(() => {
      const l = document.querySelector(".otter-submit-due-label");
      return l && l.textContent.trim().length > 0 ? l.textContent.trim() : null;
    }, null, { timeout: 15_000 })
    .then((h) => h.jsonValue())
    .catch(() => null);
  await page.screenshot({ path: `${shots}-button.png` });
  await button.click();
  const dialog = page.locator(".otter-submit-dialog").first();
  await dialog.waitFor({ state: "visible" });
  const text = async (sel) => {
    const l = dialog.locator(sel).first();
    return (await l.count()) ? (await l.textContent()).trim() : null;
  };
  if (env("EXPECT") === "score") {
    // The progress while it waits or is graded (if grading is not quicker).
    await page.waitForFunction(() => {
      const s = document.querySelector(".otter-submit-dialog .otter-submit-state");
      return s && /^(Waiting|Being graded|Graded)/.test(s.textContent.trim());
    }, null, { timeout: 30_000 }).catch(() => {});
    await page.screenshot({ path: `${shots}-progress.png` });
    await dialog.locator(".otter-submit-score").first().waitFor({ timeout: 240_000 });
  } else {
    await page.waitForFunction(() => {
      const d = document.querySelector(".otter-submit-dialog");
      const s = d && d.querySelector(".otter-submit-error, .otter-submit-state");
      return s && s.textContent.trim().length > 0 && !/^Sending/.test(s.textContent.trim());
    });
  }
  await page.screenshot({ path: `${shots}-result.png` });
  const link = dialog.locator("a.otter-submit-link").first();
  console.log(JSON.stringify({
    dialog: (await dialog.textContent()).trim(),
    state: await text(".otter-submit-state"),
    score: await text(".otter-submit-score"),
    questions: await text(".otter-submit-questions"),
    feedback: await text(".otter-submit-feedback"),
    counts: await text(".otter-submit-counts"),
    edx: await text(".otter-submit-edx"),
    error: await text(".otter-submit-error"),
    link: (await link.count()) ? await link.getAttribute("href") : null,
    buttonTitle: await button.getAttribute("title"),
    dueLabel,
  }));
} finally {
  await browser.close();
}
