/**
 * The dashboard in a real headless Chromium: the runs list (live refresh, tags, archive, delete),
 * a run whose page follows a writer playing the trainer (curves, markers, duration, epochs, final
 * metrics), the chart controls and synced cursors, the sweep page, the compare page, every page
 * free of horizontal overflow at 420 px and 1280 px, and dark mode. Screenshots go to
 * bench/screens/.
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

const chart = (page: Page, key: string) =>
  page.locator(`figure.chart[data-chart*='"key":"${key}"']`).first();

async function points(page: Page, key: string): Promise<number> {
  return Number(await chart(page, key).getAttribute("data-points"));
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the chart of a metric key shows at least `atLeast` points. */
function waitPoints(page: Page, key: string, atLeast: number): Promise<void> {
  return until(`${atLeast} points in ${key}`, async () => await points(page, key) >= atLeast);
}

/**
 * The page does not scroll sideways (at 1280 px no table needs its scroll box either), and no
 * number, time or status breaks across lines (the boxes of a Range over a cell's text tell its
 * lines).
 */
async function fits(page: Page, label: string): Promise<void> {
  const found = await page.evaluate(FITS) as {
    scroll: number;
    client: number;
    wrapped: string[];
    scrolled: string[];
  };
  if (page.viewportSize()!.width >= 1280) {
    assert.deepEqual(found.scrolled, [], `${label}: tables wider than the page`);
  }
  assert.ok(found.scroll <= found.client, `${label}: ${found.scroll} px wide in ${found.client}`);
  assert.deepEqual(found.wrapped, [], `${label}: values wrapped across lines`);
}

/** Runs in the page (a string: these tests are type-checked without the DOM's types). */
const FITS = `(() => {
  const doc = document.documentElement;
  const wrapped = [...document.querySelectorAll("td.num, th.num, td.nowrap, .badge, .cards dd")]
    .filter((el) => {
      const text = el.textContent.trim();
      if (!text) return false;
      const range = document.createRange();
      range.selectNodeContents(el);
      // Boxes of one line overlap vertically (smaller type sits inside); a box that starts
      // below every box so far starts a new line.
      const rects = [...range.getClientRects()].filter((r) => r.width > 0)
        .sort((a, b) => a.top - b.top);
      let lines = 0;
      let bottom = -Infinity;
      for (const r of rects) {
        if (r.top >= bottom - 1) lines++;
        bottom = Math.max(bottom, r.bottom);
      }
      return lines > 1;
    })
    .map((el) => el.textContent);
  // Tables that need their scroll box at this width (allowed on a phone, not on a laptop).
  const scrolled = [...document.querySelectorAll(".scroll")]
    .filter((el) => el.scrollWidth > el.clientWidth + 1)
    .map((el) => el.firstElementChild.className || el.firstElementChild.tagName);
  return { scroll: doc.scrollWidth, client: doc.clientWidth, wrapped, scrolled };
})()`;

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: new URL(name, SCREENS).pathname, fullPage: true });
}

Deno.test({
  name: "browser: list, live run, chart controls, sweep, compare, forms, widths, dark mode",
  ignore: !CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(SCREENS, { recursive: true });
    const fx = await makeFixture();
    const dash = serveDashboard({ runsDir: fx.dir, port: 0, pollMs: 150 });
    const browser = await chromium.launch({ executablePath: CHROMIUM });
    const problems: string[] = [];
    // The running run's process, played by this test, keeps its heartbeat fresh.
    const beat = setInterval(() => fx.store.heartbeat(fx.ids.running), 1000);
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
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
      await shoot(page, "runs.png");

      // The list refreshes itself while a run trains: a new best NDCG@10 shows without reload.
      const row = page.locator("tr", { has: page.getByRole("link", { name: HOSTILE_NAME }) });
      await page.getByRole("checkbox", { name: `compare ${fx.ids.finished}` }).check();
      fx.store.update(fx.ids.running, { bestValidNdcg10: 0.0611 });
      await row.locator("td", { hasText: "0.0611" }).waitFor({ timeout: 15_000 });
      // The refresh kept what was ticked.
      assert.ok(
        await page.getByRole("checkbox", { name: `compare ${fx.ids.finished}` }).isChecked(),
      );

      // A run in training: curves, cards, epochs and final metrics follow the writer.
      await page.getByRole("link", { name: HOSTILE_NAME }).click();
      await page.waitForURL(new RegExp(`/runs/${fx.ids.running}$`));
      assert.equal(await page.locator("h1").innerText(), `${HOSTILE_NAME} running`);
      assert.equal(await page.getByRole("cell", { name: HOSTILE_CONFIG }).count(), 1);
      await waitPoints(page, "train_loss_step", 5);
      await page.locator("body[data-stream=open]").waitFor({ state: "attached" });
      const loss = chart(page, "train_loss_step");
      assert.equal(await loss.getAttribute("data-markers"), "on");
      const durationCard = page.locator("[data-field=duration]");
      const before = await durationCard.innerText();
      await until("the duration to count", async () => await durationCard.innerText() !== before);
      assert.equal(await page.locator("table.epochs tbody tr").count(), 1);

      for (let step = 6; step <= 150; step++) {
        fx.store.addMetrics(fx.ids.running, [
          { epoch: 2, step, key: "train_loss_step", value: 8 / Math.sqrt(step) + 1 },
        ]);
        if (step % 20 === 0) await new Promise((r) => setTimeout(r, 120));
      }
      await waitPoints(page, "train_loss_step", 150);
      // Markers are decided again as points arrive: 150 on a 440 px plot are too many.
      assert.equal(await loss.getAttribute("data-markers"), "off");
      assert.equal(await page.locator("[data-field=steps]").innerText(), "150");

      fx.store.addMetrics(fx.ids.running, [
        { epoch: 2, step: 150, key: "train_loss", value: 2.5 },
        { epoch: 2, step: 150, key: "epoch_seconds", value: 30 },
        { epoch: 2, step: 150, key: "peak_bytes", value: 33 * MiB },
        { epoch: 2, step: 150, key: "valid_ndcg@10", value: 0.12 },
        { epoch: 2, step: 150, key: "valid_hr@10", value: 0.2 },
      ]);
      fx.store.update(fx.ids.running, { bestValidNdcg10: 0.12 });
      await page.locator("table.epochs tbody tr").nth(1).waitFor();
      assert.equal(await page.locator("table.epochs tbody tr").count(), 2);
      await page.locator("table.final td", { hasText: "valid (epoch 2)" }).waitFor();
      await page.locator("[data-field=bestValidNdcg10]", { hasText: "0.1200" }).waitFor();
      await page.locator("[data-field=peakBytes]", { hasText: "33.0 MiB" }).waitFor();
      await waitPoints(page, "peak_bytes", 2);
      await fits(page, "live run at 1280 px");
      await shoot(page, "run-live.png");

      // The run ends: the stream says so and the page's blocks take the final state.
      fx.store.update(fx.ids.running, { status: "finished", wallSeconds: 61, finished: true });
      await page.locator("body[data-stream=ended]").waitFor({ state: "attached" });
      await page.locator("h1 .badge", { hasText: "finished" }).waitFor();
      assert.equal(await durationCard.innerText(), "1 min 01 s");

      // A finished run: curves from the API and the controls every chart follows.
      await page.goto(`${dash.url}runs/${fx.ids.finished}`);
      await waitPoints(page, "train_loss_step", 30);
      await waitPoints(page, "valid_{metric}", 3);
      assert.equal(await page.locator("table.final tbody tr").count(), 12);
      const valid = chart(page, "valid_{metric}");
      const legend = valid.locator(".legend");
      assert.match(await legend.innerText(), /validation \(latest\) 0\.31\b/);
      assert.match(await legend.innerText(), /MostPop test 0\.027\b/);
      // The axes, as the plot describes them: titles, units and the y range shown.
      const axes = async (key: string) =>
        await chart(page, key).locator(".plot").getAttribute("aria-label") ?? "";
      assert.match(await axes("valid_{metric}"), /^validation NDCG@10 from .* against step$/);
      // Memory from zero.
      assert.match(await axes("peak_bytes"), /^GPU memory from 0 B to /);
      await shoot(page, "run.png");
      const controls = page.locator("form.chart-controls");
      await controls.getByLabel("metric family").selectOption("hr");
      await controls.getByLabel("cut-off").selectOption("20");
      await until("the HR@20 picker", async () => /0\.496\b/.test(await legend.innerText()));
      assert.match(await legend.innerText(), /MostPop test 0\.0432\b/);
      assert.match(await axes("valid_{metric}"), /^validation HR@20 from /);
      await controls.getByLabel("x axis").selectOption("sequences");
      await until(
        "the sequences axis",
        async () =>
          (await axes("train_loss_step")).endsWith("against sequences seen (steps × batch size)"),
      );
      await controls.getByLabel("x axis").selectOption("time");
      await until(
        "the wall-time axis",
        async () => (await axes("peak_bytes")).endsWith("against wall time since the run started"),
      );
      assert.equal(await points(page, "peak_bytes"), 3);
      await controls.getByLabel("log scale").check();
      await until(
        "the log scale",
        async () => (await axes("train_loss_step")).startsWith("loss (nats), log scale from "),
      );
      await controls.locator("input[name=smooth]").fill("0.9");
      await until(
        "smoothing",
        async () =>
          /EMA 0\.90/.test(await chart(page, "train_loss_step").locator(".legend").innerText()),
      );
      // Synced cursors: pointing at one chart moves every chart's legend to that point.
      const box = (await chart(page, "train_loss_step").locator(".u-over").boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
      await until("the synced cursor", async () => {
        const text = await chart(page, "epoch_seconds").locator(".legend").innerText();
        return !text.includes("(latest)");
      });
      await page.mouse.move(0, 0);

      // A lost run: its checkpoint and how to resume it.
      await page.goto(`${dash.url}runs/${fx.ids.lost}`);
      assert.match(
        await page.locator("section.lost").innerText(),
        new RegExp(`deno task train --resume ${fx.ids.lost} --out `),
      );

      // The sweep: six cells, one over budget, the best outlined, the colour scale, parallel
      // coordinates, the trials table with the CLI's columns and its CSV.
      await page.goto(dash.url);
      await page.getByRole("link", { name: "negatives × batch" }).click();
      await page.waitForURL(/\/sweeps\//);
      assert.equal(await page.locator("table.heatmap td.cell").count(), 6);
      assert.match(await page.locator("td.cell.exceeds").innerText(), /exceeds budget/);
      assert.match(await page.locator("td.cell.best").innerText(), /0\.2700/);
      assert.equal(await page.locator(".scale .ticks span").first().innerText(), "0.2100");
      assert.equal(await page.locator("svg.parallel polyline").count(), 6);
      assert.equal(await page.locator("svg.parallel polyline.unscored").count(), 2);
      assert.deepEqual(
        (await page.locator("table.trials thead th").allInnerTexts()).slice(0, 8),
        [
          "negatives",
          "batchSize",
          "status",
          "valid NDCG@10",
          "HR@10",
          "Coverage@10",
          "s/epoch",
          "peak memory",
        ],
      );
      const csv = await page.request.get(
        await page.getByRole("link", { name: "download CSV" })
          .getAttribute("href").then((h) => new URL(h!, page.url()).href),
      );
      assert.match(await csv.text(), /^sweep_id,key,negatives,batchSize,status,/);
      await shoot(page, "sweep.png");

      // Compare three runs picked with checkboxes, their curves overlaid.
      await page.goto(dash.url);
      for (const id of [fx.ids.finished, fx.ids.sampled, fx.ids.fullSoftmax]) {
        await page.getByRole("checkbox", { name: `compare ${id}` }).check();
      }
      await page.getByRole("button", { name: /compare selected/ }).click();
      await page.waitForURL(/\/compare\?/);
      await waitPoints(page, "train_loss", 9);
      assert.equal(await points(page, "valid_{metric}"), 9);
      await fits(page, "compare 3 runs at 1280 px");
      await shoot(page, "compare.png");
      const compareUrl = page.url();

      // Tags, archive and delete, through the pages' own forms.
      await page.goto(`${dash.url}runs/${fx.ids.sampled}`);
      await page.locator("input[name=tags]").fill("baseline, beauty");
      await page.locator("textarea[name=note]").fill("sampled softmax, 128 negatives");
      await page.getByRole("button", { name: "save notes" }).click();
      await page.locator("ul.tags li", { hasText: "baseline" }).waitFor();
      await page.getByRole("link", { name: "beauty", exact: true }).click();
      await page.waitForURL(/tag=beauty/);
      assert.equal(await page.locator("table.runs tbody tr").count(), 1);
      await page.goto(`${dash.url}runs/${fx.ids.sampled}`);
      await page.getByRole("button", { name: "archive" }).click();
      await page.getByRole("button", { name: "unarchive" }).waitFor();
      await page.goto(dash.url);
      assert.equal(await page.locator("table.runs tbody tr").count(), 10);
      await page.goto(`${dash.url}runs/${fx.ids.failed}`);
      await Deno.mkdir(`${fx.dir}/${fx.ids.failed}`);
      await Deno.writeTextFile(`${fx.dir}/${fx.ids.failed}/config.json`, "{}");
      await page.getByRole("link", { name: "delete…" }).click();
      await page.waitForURL(/\/delete$/);
      assert.match(
        await page.locator("main").innerText(),
        /\(1 file, 2 B: checkpoints and config\)/,
      );
      await fits(page, "delete confirmation at 1280 px");
      await page.getByRole("button", { name: "delete run and files" }).click();
      await page.waitForURL(/\?deleted=/);
      assert.match(await page.locator(".flash").innerText(), /Deleted run/);
      await assert.rejects(Deno.stat(`${fx.dir}/${fx.ids.failed}`), Deno.errors.NotFound);

      // Every page at a phone's width and at a laptop's: nothing wider than the window.
      const pages = [
        "",
        `runs/${fx.ids.finished}`,
        `runs/${fx.ids.lost}`,
        `runs/${fx.ids.fullSoftmax}`,
        `sweeps/${fx.ids.sweep}`,
        compareUrl.slice(dash.url.length),
        `runs/${fx.ids.lost}/delete`,
        "runs/nope",
      ];
      for (const width of [420, 1280]) {
        await page.setViewportSize({ width, height: 900 });
        for (const path of pages) {
          await page.goto(`${dash.url}${path}`);
          await page.waitForLoadState("load");
          await fits(page, `/${path} at ${width} px`);
        }
      }
      // The 404 just visited is the page's point, not a problem.
      const expected = `404 ${dash.url}runs/nope`;
      assert.deepEqual(problems.filter((p) => p !== expected), []);
      problems.length = 0;

      await page.setViewportSize({ width: 420, height: 900 });
      await page.goto(`${dash.url}runs/${fx.ids.finished}`);
      await waitPoints(page, "train_loss_step", 30);
      await shoot(page, "run-420.png");

      // Dark mode follows the system's preference.
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.goto(`${dash.url}runs/${fx.ids.finished}`);
      await waitPoints(page, "train_loss_step", 30);
      assert.equal(
        await page.evaluate("getComputedStyle(document.documentElement).backgroundColor"),
        "rgb(15, 18, 23)",
      );
      await shoot(page, "run-dark.png");
      await page.goto(`${dash.url}sweeps/${fx.ids.sweep}`);
      await shoot(page, "sweep-dark.png");

      assert.deepEqual(problems, []);
    } finally {
      clearInterval(beat);
      await browser.close();
      await dash.close();
      await fx.cleanup();
    }
  },
});
