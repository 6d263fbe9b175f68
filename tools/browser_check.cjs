// Drives headless Chromium through the serve page (tools/browser_check.sh sets it up):
//   node tools/browser_check.cjs URL IMAGE OUT.png
// Fails unless the page shows the probabilities and the heat map, and unless every request
// the page made went to URL (assets embedded, no CDN).
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

(async () => {
  const [url, image, out] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1180, height: 760 } });
    const elsewhere = [];
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith(url) && !u.startsWith("blob:") && !u.startsWith("data:")) elsewhere.push(u);
    });
    await page.goto(url + "/", { waitUntil: "load" });
    await page.setInputFiles("#file", image);
    await page.waitForSelector('#status[data-state="done"]', { timeout: 120000 });
    await page.waitForFunction(() => {
      const h = document.getElementById("heat");
      return !h.hidden && h.complete && h.naturalWidth > 0;
    });
    const bars = await page.$$eval("#bars .bar", (b) => b.length);
    const predicted = await page.textContent("#predicted");
    if (bars < 7) throw new Error("only " + bars + " bars");
    if (elsewhere.length) throw new Error("the page fetched from elsewhere: " + elsewhere.join(", "));
    await page.waitForTimeout(500); // the bars' width transition
    await page.screenshot({ path: out });
    console.log(predicted.trim() + "; " + bars + " bars; heat map shown");
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
