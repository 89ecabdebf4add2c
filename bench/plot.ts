/**
 * The loss benchmark's memory-vs-catalogue chart: peak GPU bytes against C on log-log axes, one
 * series per loss at one K and d, and the lower bound (inputs + gradients) as a dashed line. It is
 * an inline SVG, turned into a PNG by a screenshot in headless Chromium: no plotting library,
 * nothing fetched.
 */
import { chromium } from "playwright-core";
import {
  formatCatalog,
  isFull,
  LOSS_VARIANTS,
  type LossCell,
  type LossVariant,
  lowerBoundBytes,
  variantLabel,
} from "./loss.ts";

export interface PlotOptions {
  negatives: number;
  dim: number;
  title: string;
}

const COLORS: Record<LossVariant, string> = {
  "ce": "#d62728",
  "ce-": "#ff7f0e",
  "ce-shared": "#9467bd",
  "cce": "#2ca02c",
  "cce-": "#1f77b4",
};

export const PLOT_WIDTH = 900;
export const PLOT_HEIGHT = 560;
const MARGIN = { left: 100, right: 200, top: 50, bottom: 62 };

interface Point {
  catalog: number;
  bytes: number;
  measured: boolean;
}

/**
 * The points of one variant at (K, d): measured peaks, or the estimate of a cell refused or
 * skipped. Cells a partial result never reached are left out: the legend says why a hollow
 * marker was not run, and "pending" is no such reason.
 */
export function seriesOf(cells: LossCell[], v: LossVariant, k: number, d: number): Point[] {
  return cells
    .filter((c) =>
      c.variant === v && c.dim === d && c.status !== "pending" &&
      (isFull(v) ? c.negatives === null : c.negatives === k)
    )
    .map((c) => {
      const measured = c.status === "measured" && c.peakBytes !== undefined;
      return { catalog: c.catalog, bytes: measured ? c.peakBytes! : c.estimateBytes, measured };
    })
    .sort((a, b) => a.catalog - b.catalog);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A power of 4 bytes in the largest unit it is a whole number of: "64 MiB", "1 GiB". */
function tickBytes(b: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (u < units.length - 1 && b >= 1024) {
    b /= 1024;
    u++;
  }
  return `${Number(b.toPrecision(3))} ${units[u]}`;
}

/** Log axis from the power of `base` at or below `lo` to the one at or above `hi`. */
function logAxis(lo: number, hi: number, base: number): number[] {
  const from = Math.floor(Math.log(lo) / Math.log(base) + 1e-9);
  let to = Math.ceil(Math.log(hi) / Math.log(base) - 1e-9);
  if (to === from) to++;
  return Array.from({ length: to - from + 1 }, (_, i) => base ** (from + i));
}

export function memoryPlotSvg(cells: LossCell[], opts: PlotOptions): string {
  const series = LOSS_VARIANTS.map((v) => ({
    v,
    points: seriesOf(cells, v, opts.negatives, opts.dim),
  }))
    .filter((s) => s.points.length > 0);
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    throw new Error(`no cells at K = ${opts.negatives}, d = ${opts.dim} to plot`);
  }
  const positions = cells.find((c) => c.dim === opts.dim)!.positions;
  const catalogs = [...new Set(all.map((p) => p.catalog))].sort((a, b) => a - b);
  const bound = (c: number) => lowerBoundBytes(positions, c, opts.dim);
  const ys = [...all.map((p) => p.bytes), ...catalogs.map(bound)];
  const xTicks = logAxis(catalogs[0], catalogs.at(-1)!, 10);
  // Powers of 4 bytes label cleanly: 1 MiB, 4 MiB, 16 MiB, …
  const yTicks = logAxis(Math.min(...ys), Math.max(...ys), 4);
  const w = PLOT_WIDTH - MARGIN.left - MARGIN.right;
  const h = PLOT_HEIGHT - MARGIN.top - MARGIN.bottom;
  const lx = (c: number) => Math.log(c);
  const x = (c: number) =>
    MARGIN.left + ((lx(c) - lx(xTicks[0])) / (lx(xTicks.at(-1)!) - lx(xTicks[0]))) * w;
  const y = (b: number) =>
    MARGIN.top + h - ((lx(b) - lx(yTicks[0])) / (lx(yTicks.at(-1)!) - lx(yTicks[0]))) * h;
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [];
  const text = (tx: number, ty: number, s: string, extra = "") =>
    out.push(`<text x="${f(tx)}" y="${f(ty)}" ${extra}>${escapeXml(s)}</text>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" ` +
      `viewBox="0 0 ${PLOT_WIDTH} ${PLOT_HEIGHT}" font-family="DejaVu Sans, sans-serif" ` +
      `font-size="12">`,
    `<rect width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" fill="#fff"/>`,
  );
  text(MARGIN.left, 28, opts.title, `font-size="15" font-weight="bold"`);
  for (const t of xTicks) {
    out.push(
      `<line x1="${f(x(t))}" y1="${MARGIN.top}" x2="${f(x(t))}" y2="${MARGIN.top + h}" ` +
        `stroke="#e5e5e5"/>`,
    );
    text(x(t), MARGIN.top + h + 18, formatCatalog(t), `text-anchor="middle"`);
  }
  for (const t of yTicks) {
    out.push(
      `<line x1="${MARGIN.left}" y1="${f(y(t))}" x2="${MARGIN.left + w}" y2="${f(y(t))}" ` +
        `stroke="#e5e5e5"/>`,
    );
    text(MARGIN.left - 8, y(t) + 4, tickBytes(t), `text-anchor="end"`);
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${w}" height="${h}" fill="none" ` +
      `stroke="#888"/>`,
  );
  text(MARGIN.left + w / 2, PLOT_HEIGHT - 18, "catalogue size C (items)", `text-anchor="middle"`);
  text(
    22,
    MARGIN.top + h / 2,
    "peak GPU bytes",
    `text-anchor="middle" transform="rotate(-90 22 ${f(MARGIN.top + h / 2)})"`,
  );
  // The lower bound bends where the table overtakes h: sample it along the axis.
  const steps = 60;
  const boundPath = Array.from({ length: steps + 1 }, (_, i) => {
    const c = Math.exp(lx(catalogs[0]) + ((lx(catalogs.at(-1)!) - lx(catalogs[0])) * i) / steps);
    return `${i === 0 ? "M" : "L"}${f(x(c))},${f(y(bound(c)))}`;
  }).join(" ");
  out.push(
    `<path d="${boundPath}" fill="none" stroke="#555" stroke-width="1.5" stroke-dasharray="6 4"/>`,
  );
  for (const { v, points } of series) {
    const color = COLORS[v];
    const measured = points.filter((p) => p.measured);
    if (measured.length > 1) {
      const d = measured.map((p, i) => `${i === 0 ? "M" : "L"}${f(x(p.catalog))},${f(y(p.bytes))}`);
      out.push(`<path d="${d.join(" ")}" fill="none" stroke="${color}" stroke-width="2"/>`);
    }
    for (const p of points) {
      out.push(
        `<circle cx="${f(x(p.catalog))}" cy="${f(y(p.bytes))}" r="5" stroke="${color}" ` +
          `stroke-width="2" fill="${p.measured ? color : "#fff"}"/>`,
      );
    }
  }
  // Legend: one row per variant, then the lower bound and the marker key.
  const lx0 = MARGIN.left + w + 16;
  let ly = MARGIN.top + 8;
  for (const { v } of series) {
    out.push(`<circle cx="${lx0 + 6}" cy="${ly}" r="5" fill="${COLORS[v]}"/>`);
    text(lx0 + 18, ly + 4, variantLabel(v));
    ly += 22;
  }
  out.push(
    `<line x1="${lx0}" y1="${ly}" x2="${lx0 + 14}" y2="${ly}" stroke="#555" stroke-width="1.5" ` +
      `stroke-dasharray="4 3"/>`,
  );
  text(lx0 + 18, ly + 4, "lower bound");
  ly += 36;
  out.push(`<circle cx="${lx0 + 6}" cy="${ly}" r="5" fill="#444"/>`);
  text(lx0 + 18, ly + 4, "measured peak");
  ly += 22;
  out.push(`<circle cx="${lx0 + 6}" cy="${ly}" r="5" fill="#fff" stroke="#444" stroke-width="2"/>`);
  text(lx0 + 18, ly + 4, "estimate, not run");
  text(lx0 + 18, ly + 20, "(over budget or time)", `font-size="11" fill="#666"`);
  out.push("</svg>");
  return out.join("\n");
}

/** /usr/bin/chromium or /usr/bin/chromium-browser, when installed. */
export function findChromium(): string | null {
  for (const p of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // Not at this path: try the next.
    }
  }
  return null;
}

/** Screenshots `svg` in headless Chromium at twice its pixel size and writes the PNG to `path`. */
export async function renderPng(svg: string, path: string, executablePath: string): Promise<void> {
  const browser = await chromium.launch({ executablePath });
  try {
    const page = await browser.newPage({
      viewport: { width: PLOT_WIDTH, height: PLOT_HEIGHT },
      deviceScaleFactor: 2,
    });
    await page.setContent(
      `<!doctype html><html><body style="margin:0;background:#fff">${svg}</body></html>`,
    );
    await page.locator("svg").screenshot({ path });
  } finally {
    await browser.close();
  }
}
