/**
 * The embeddings page in a real headless Chromium: from a run's page to its map, PCA switching to
 * UMAP once the worker has cached it, the client under the pointer named with its class, a SASRec
 * run's items on the popularity scale, no sideways scrolling at 420 px and 1280 px, dark mode.
 * Screenshots go to bench/screens/.
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { serveDashboard } from "../../src/dashboard/serve.ts";
import { CLIENTS, ITEMS, makeEmbeddingsFixture } from "./embeddings_fixture.ts";

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
    "embeddings_browser_test: skipped, no Chromium at /usr/bin/chromium (apt-get install -y chromium)",
  );
}

const MAP = "figure.embedding-map";

/** Moves the pointer over the map on a grid until it names a point; answers the label. */
async function hoverSomePoint(page: Page): Promise<string> {
  const box = (await page.locator(`${MAP} canvas`).boundingBox())!;
  for (let gy = 1; gy < 30; gy++) {
    for (let gx = 1; gx < 30; gx++) {
      await page.mouse.move(box.x + (box.width * gx) / 30, box.y + (box.height * gy) / 30);
      if (await page.locator(`${MAP}[data-hover]`).count()) {
        return await page.locator(".map-tip").innerText();
      }
    }
  }
  throw new Error("no point under the pointer anywhere on the map");
}

async function noSidewaysScroll(page: Page, label: string): Promise<void> {
  const [scroll, client] = await page.evaluate(
    "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
  ) as number[];
  assert.ok(scroll <= client, `${label}: ${scroll} px wide in ${client}`);
}

Deno.test({
  name: "browser: embeddings map, UMAP after PCA, hover, SASRec items, widths, dark mode",
  ignore: !CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(SCREENS, { recursive: true });
    const fx = await makeEmbeddingsFixture();
    const dash = serveDashboard({ runsDir: fx.dir, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM });
    const problems: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`);
      });
      page.on("response", (r) => {
        if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
      });

      // From the run's page to its map: PCA at once, UMAP when the worker has cached it.
      await page.goto(`${dash.url}runs/${fx.ids.clients}`);
      await page.getByRole("link", { name: "clients", exact: true }).click();
      await page.waitForURL(/\/embeddings\?kind=clients$/);
      await page.locator(`${MAP}[data-points="${CLIENTS}"]`).waitFor();
      await page.locator(`${MAP}[data-method="umap"]`).waitFor({ timeout: 60_000 });
      assert.match(await page.locator(".map-note").innerText(), /^UMAP \(umap-js/);
      assert.equal(await page.locator("ul.categories li").count(), 4);

      // The client under the pointer, with its class.
      assert.match(await hoverSomePoint(page), /^client c\d{4} · target: [0-3]$/);
      await noSidewaysScroll(page, "client map at 1280 px");
      await page.screenshot({ path: new URL("embeddings.png", SCREENS).pathname, fullPage: true });
      await page.mouse.move(0, 0);
      await page.locator(".map-tip").waitFor({ state: "hidden" });

      // A SASRec run's items, written from its checkpoint, on the popularity scale.
      await page.goto(`${dash.url}runs/${fx.ids.sasrec}/embeddings`);
      await page.locator(`${MAP}[data-points="${ITEMS}"]`).waitFor();
      assert.match(
        await page.locator(".scale .ticks").innerText(),
        /popularity \(training interactions\)/,
      );
      await page.locator(`${MAP}[data-method="umap"]`).waitFor({ timeout: 60_000 });
      assert.match(
        await hoverSomePoint(page),
        /^item 1\d\d · popularity \(training interactions\): \d+$/,
      );
      await page.screenshot({
        path: new URL("embeddings-items.png", SCREENS).pathname,
        fullPage: true,
      });

      // A phone's width: the map shrinks to fit and is still drawn.
      await page.setViewportSize({ width: 420, height: 900 });
      await page.goto(`${dash.url}runs/${fx.ids.clients}/embeddings`);
      await page.locator(`${MAP}[data-points="${CLIENTS}"]`).waitFor();
      await noSidewaysScroll(page, "client map at 420 px");
      const width = (await page.locator(`${MAP} canvas`).boundingBox())!.width;
      assert.ok(width <= 420 && width > 300, `canvas ${width} px wide`);

      // Dark mode: the page's colours follow the system; the dots keep theirs.
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.goto(`${dash.url}runs/${fx.ids.clients}/embeddings`);
      await page.locator(`${MAP}[data-points="${CLIENTS}"]`).waitFor();
      await page.screenshot({
        path: new URL("embeddings-dark.png", SCREENS).pathname,
        fullPage: true,
      });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await dash.close();
      await fx.cleanup();
    }
  },
});
