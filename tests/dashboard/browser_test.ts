/**
 * The dashboard in a real headless Chromium: the runs list, a run whose curves gain points over
 * Server-Sent Events while a writer plays the trainer, the sweep heatmap and the compare page.
 * Screenshots go to bench/screens/.
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { serveDashboard } from "../../src/dashboard/serve.ts";
import { HOSTILE_CONFIG, HOSTILE_NAME, makeFixture, MiB } from "./fixtures.ts";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const SCREENS = new URL("../../bench/screens/", import.meta.url);

if (!CHROMIUM) {
  console.warn(
    "browser_test: skipped, no Chromium at /usr/bin/chromium (apt-get install -y chromium)",
  );
}

async function points(page: Page, key: string): Promise<number> {
  const el = page.locator(`figure.chart[data-chart*='"key":"${key}"']`).first();
  return Number(await el.getAttribute("data-points"));
}

/** Waits until the chart of a metric key shows at least `atLeast` points. */
async function waitPoints(page: Page, key: string, atLeast: number): Promise<void> {
  const end = Date.now() + 20_000;
  let seen = await points(page, key);
  while (seen < atLeast) {
    if (Date.now() > end) throw new Error(`chart ${key}: ${seen} points, wanted ${atLeast}`);
    await new Promise((r) => setTimeout(r, 100));
    seen = await points(page, key);
  }
}

Deno.test({
  name: "browser: runs list, live run over SSE, sweep heatmap, compare",
  ignore: !CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(SCREENS, { recursive: true });
    const fx = await makeFixture();
    const dash = serveDashboard({ runsDir: fx.dir, port: 0, pollMs: 150 });
    const browser = await chromium.launch({ executablePath: CHROMIUM });
    const problems: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1320, height: 900 } });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => {
        // Failed loads are reported with their URL by the response handler.
        if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
          problems.push(`console: ${m.text()}`);
        }
      });
      page.on("response", (r) => {
        if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
      });
      page.on("dialog", (d) => {
        problems.push(`dialog: ${d.message()}`);
        d.dismiss();
      });

      // Runs list: every run, the hostile name as text, sorting by NDCG@10 through a link.
      await page.goto(dash.url);
      assert.equal(await page.locator("table.runs tbody tr").count(), 11);
      assert.equal(await page.getByRole("link", { name: HOSTILE_NAME }).count(), 1);
      await page.getByRole("link", { name: "best NDCG@10" }).click();
      await page.waitForURL(/sort=ndcg/);
      assert.equal(
        await page.locator("table.runs tbody tr td:nth-child(2) a").first().innerText(),
        "beauty-ce",
      );
      await page.screenshot({ path: new URL("runs.png", SCREENS).pathname, fullPage: true });

      // A run in training: its curves gain the points a writer adds while the page watches.
      await page.getByRole("link", { name: HOSTILE_NAME }).click();
      await page.waitForURL(new RegExp(`/runs/${fx.ids.running}$`));
      assert.equal(await page.locator("h1").innerText(), `${HOSTILE_NAME} running`);
      assert.equal(await page.getByRole("cell", { name: HOSTILE_CONFIG }).count(), 1);
      await waitPoints(page, "train_loss_step", 5);
      await page.locator("body[data-stream=open]").waitFor({ state: "attached" });
      for (let step = 6; step <= 30; step++) {
        fx.store.addMetrics(fx.ids.running, [
          { epoch: 2, step, key: "train_loss_step", value: 8 / Math.sqrt(step) + 1 },
        ]);
        if (step % 5 === 0) await new Promise((r) => setTimeout(r, 120));
      }
      await waitPoints(page, "train_loss_step", 30);
      fx.store.addMetrics(fx.ids.running, [
        { epoch: 2, step: 30, key: "train_loss", value: 2.5 },
        { epoch: 2, step: 30, key: "valid_ndcg@10", value: 0.12 },
        { epoch: 2, step: 30, key: "peak_bytes", value: 33 * MiB },
      ]);
      fx.store.update(fx.ids.running, { bestValidNdcg10: 0.12 });
      await waitPoints(page, "train_loss", 2);
      await waitPoints(page, "peak_bytes", 2);
      await page.locator("[data-field=bestValidNdcg10]", { hasText: "0.1200" }).waitFor();
      assert.ok(await page.locator("figure.chart canvas").count() >= 4);
      await page.screenshot({ path: new URL("run-live.png", SCREENS).pathname, fullPage: true });

      // The run ends: the stream says so and the page reloads with the final state.
      fx.store.update(fx.ids.running, { status: "finished", wallSeconds: 61, finished: true });
      await page.locator("h1 .badge", { hasText: "finished" }).waitFor({ timeout: 20_000 });
      await page.waitForLoadState("load");

      // A finished run: curves drawn from the API, final metrics from the server.
      await page.goto(`${dash.url}runs/${fx.ids.finished}`);
      await waitPoints(page, "train_loss_step", 30);
      await waitPoints(page, "valid_ndcg@10", 6);
      assert.equal(await page.locator("table.final tbody tr").count(), 12);
      await page.screenshot({ path: new URL("run.png", SCREENS).pathname, fullPage: true });

      // The sweep: six cells, one over budget, the best under budget highlighted.
      await page.goto(dash.url);
      await page.getByRole("link", { name: "negatives × batch" }).click();
      await page.waitForURL(/\/sweeps\//);
      assert.equal(await page.locator("table.heatmap td.cell").count(), 6);
      assert.match(await page.locator("td.cell.exceeds").innerText(), /exceeds budget/);
      assert.match(await page.locator("td.cell.best").innerText(), /0\.2700/);
      await page.screenshot({ path: new URL("sweep.png", SCREENS).pathname, fullPage: true });

      // Compare: two runs picked with checkboxes, their curves overlaid.
      await page.goto(dash.url);
      await page.getByRole("checkbox", { name: `compare ${fx.ids.finished}` }).check();
      await page.getByRole("checkbox", { name: `compare ${fx.ids.sampled}` }).check();
      await page.getByRole("button", { name: /compare selected/ }).click();
      await page.waitForURL(/\/compare\?/);
      await waitPoints(page, "train_loss", 6);
      assert.equal(await points(page, "valid_ndcg@10"), 6);
      await page.screenshot({ path: new URL("compare.png", SCREENS).pathname, fullPage: true });

      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await dash.close();
      await fx.cleanup();
    }
  },
});
