// What the browser scripts share: their settings from the environment, and Debian's
// Chromium started through playwright-core (installed by scripts/setup-browser.sh in
// PLAYWRIGHT_DIR; it never downloads a browser of its own).
import { createRequire } from "node:module";

/** The environment variable `k`, which must be set. */
export const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};

/** Headless Chromium, without the background traffic this machine's network refuses. */
export async function launch() {
  const require = createRequire(`${env("PLAYWRIGHT_DIR")}/`);
  const { chromium } = require("playwright-core");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
