/**
 * The dashboard's hono app: server-rendered pages, the JSON API behind them, Server-Sent Events
 * for runs in training, and the four static files the pages load (uPlot straight from its npm
 * package, the stylesheet and the chart script). Nothing else is served: no directory, no file
 * named by a request.
 */
import { type Context, Hono } from "hono";
import { etag } from "hono/etag";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import clientJs from "./static/dashboard.js" with { type: "text" };
import styleCss from "./static/style.css" with { type: "text" };
import { StoreReader } from "../store/read.ts";
import { runEvents } from "./events.ts";
import { layoutSweep, type SweepLayout } from "./heatmap.ts";
import { epochRows, finalMetrics, STEP_KEYS, toSeries } from "./metrics.ts";
import { applyRunQuery, parseRunQuery } from "./query.ts";
import { getRunView, listRunViews, type RunView } from "./runs.ts";
import { ComparePage, ErrorPage, RunPage, RunsPage, SweepPage } from "./views.tsx";

export interface AppOptions {
  /** The runs folder: `<runsDir>/runs.sqlite` is the run store. */
  runsDir: string;
  /** How often the live-update stream looks for new metric rows. */
  pollMs?: number;
  /** Aborting it ends open event streams (server shutdown). */
  signal?: AbortSignal;
  /**
   * Answer only requests whose Host is a loopback name, so that a web page cannot reach the
   * dashboard through DNS rebinding. On when the server binds a loopback address.
   */
  loopbackOnly?: boolean;
}

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Heatmap cells carry their colour in a style attribute.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const STATIC: Record<string, { body: string; type: string }> = {
  "uPlot.iife.min.js": { body: uplotJs, type: "text/javascript; charset=utf-8" },
  "uPlot.min.css": { body: uplotCss, type: "text/css; charset=utf-8" },
  "dashboard.js": { body: clientJs, type: "text/javascript; charset=utf-8" },
  "style.css": { body: styleCss, type: "text/css; charset=utf-8" },
};

/** Run and sweep ids: no path separators, no "..", nothing a path could be built from. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function validId(id: string): boolean {
  return ID.test(id) && !id.includes("..");
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

export function createApp(opts: AppOptions): Hono {
  const reader = StoreReader.open(opts.runsDir);
  const pollMs = opts.pollMs ?? 500;
  const app = new Hono();

  const page = (
    c: Context,
    node: HtmlEscapedString | Promise<HtmlEscapedString>,
    status: 200 | 400 | 404 = 200,
  ) => c.html(html`<!doctype html>${node}`, status);

  const isApi = (c: Context) => c.req.path.startsWith("/api/");

  const fail = (c: Context, status: 400 | 404, message: string) =>
    isApi(c) ? c.json({ error: message }, status) : page(
      c,
      <ErrorPage title={status === 404 ? "Not found" : "Bad request"} message={message} />,
      status,
    );

  app.use(async (c, next) => {
    if (opts.loopbackOnly && !LOOPBACK.test(c.req.header("host") ?? "")) {
      return c.text("this dashboard answers loopback host names only", 421);
    }
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Content-Security-Policy", CSP);
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "DENY");
  });

  app.notFound((c) => fail(c, 404, `nothing at ${c.req.path}`));

  app.onError((err, c) => {
    console.error(`dashboard: ${c.req.method} ${c.req.path}: ${err.stack ?? err}`);
    return isApi(c) ? c.json({ error: "internal error" }, 500) : c.text("internal error", 500);
  });

  app.use("/static/*", etag());
  app.get("/static/:name", (c) => {
    const name = c.req.param("name");
    const file = Object.hasOwn(STATIC, name) ? STATIC[name] : null;
    if (!file) return c.notFound();
    return c.body(file.body, 200, { "Content-Type": file.type, "Cache-Control": "no-cache" });
  });

  /** A run by the `:id` parameter, or the 400/404 response to send. */
  const runOf = (c: Context): RunView | Response | Promise<Response> => {
    const id = c.req.param("id") ?? "";
    if (!validId(id)) return fail(c, 400, "invalid run id");
    return getRunView(reader, id) ?? fail(c, 404, `no run "${id}"`);
  };

  const sweepOf = (c: Context) => {
    const id = c.req.param("id") ?? "";
    if (!validId(id)) return fail(c, 400, "invalid sweep id");
    const view = reader.getSweep(id);
    if (!view) return fail(c, 404, `no sweep "${id}"`);
    return { view, layout: layoutSweep(view.sweep.grid, view.trials, view.sweep.budgetBytes) };
  };

  const runDetail = (run: RunView) => {
    const rows = reader.metricRows(run.id, { exceptKeys: STEP_KEYS });
    return { run, epochs: epochRows(rows), final: finalMetrics(rows) };
  };

  const listing = (c: Context) => {
    const all = listRunViews(reader);
    const q = parseRunQuery((name) => c.req.query(name));
    return { all, q, runs: applyRunQuery(all, q) };
  };

  app.get("/", (c) => {
    const { all, q, runs } = listing(c);
    const distinct = (values: (string | null)[]) =>
      [...new Set(values.filter((v): v is string => v !== null))].sort();
    return page(
      c,
      <RunsPage
        runs={runs}
        total={all.length}
        datasets={distinct(all.map((r) => r.dataset))}
        losses={distinct(all.map((r) => r.loss))}
        sweeps={reader.listSweeps()}
        q={q}
        runsDir={opts.runsDir}
      />,
    );
  });

  app.get("/runs/:id", (c) => {
    const run = runOf(c);
    if (!("id" in run)) return run;
    const sweep = run.sweepId ? reader.getSweepRecord(run.sweepId) : null;
    const { epochs, final } = runDetail(run);
    return page(
      c,
      <RunPage run={run} epochs={epochs} final={final} sweep={sweep} runsDir={opts.runsDir} />,
    );
  });

  app.get("/sweeps/:id", (c) => {
    const found = sweepOf(c);
    if (!("layout" in found)) return found;
    return page(c, <SweepPage view={found.view} layout={found.layout} />);
  });

  app.get("/compare", (c) => {
    const ids = [
      ...new Set((c.req.queries("ids") ?? []).flatMap((v) => v.split(",")).filter(Boolean)),
    ];
    if (ids.length < 2 || ids.length > 5) {
      return fail(c, 400, `pick 2 to 5 runs to compare (got ${ids.length})`);
    }
    const bad = ids.find((id) => !validId(id));
    if (bad !== undefined) return fail(c, 400, "invalid run id");
    const runs: RunView[] = [];
    for (const id of ids) {
      const run = getRunView(reader, id);
      if (!run) return fail(c, 404, `no run "${id}"`);
      runs.push(run);
    }
    const finals = runs.map((r) => runDetail(r).final);
    return page(c, <ComparePage runs={runs} finals={finals} />);
  });

  app.get("/api/runs", (c) => {
    const { all, runs } = listing(c);
    return c.json({ total: all.length, runs });
  });

  app.get("/api/runs/:id", (c) => {
    const run = runOf(c);
    if (!("id" in run)) return run;
    return c.json(runDetail(run));
  });

  app.get("/api/runs/:id/metrics", (c) => {
    const run = runOf(c);
    if (!("id" in run)) return run;
    const after = cursorParam(c.req.query("after"));
    if (after === null) return fail(c, 400, "after must be a non-negative integer");
    const keys = c.req.query("keys")?.split(",").filter(Boolean);
    const cursor = reader.metricsCursor(run.id);
    const rows = reader.metricRows(run.id, { after, upTo: cursor, keys });
    return c.json({ runId: run.id, cursor, series: toSeries(rows) });
  });

  app.get("/api/runs/:id/events", (c) => {
    const run = runOf(c);
    if (!("id" in run)) return run;
    // EventSource resends the last event id when it reconnects.
    const after = cursorParam(c.req.header("last-event-id") ?? c.req.query("after"));
    if (after === null) return fail(c, 400, "after must be a non-negative integer");
    const stream = runEvents({ reader, runId: run.id, after, pollMs, signal: opts.signal });
    return c.body(stream, 200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache",
    });
  });

  app.get("/api/sweeps", (c) => c.json({ sweeps: reader.listSweeps() }));

  app.get("/api/sweeps/:id", (c) => {
    const found = sweepOf(c);
    if (!("layout" in found)) return found;
    const { view, layout } = found;
    return c.json({ ...view, ...sweepJson(layout) });
  });

  opts.signal?.addEventListener("abort", () => reader.close(), { once: true });
  return app;
}

/** The heatmaps with each cell naming its trial by key instead of repeating it. */
function sweepJson(layout: SweepLayout) {
  return {
    best: layout.best?.key ?? null,
    heatmaps: layout.heatmaps.map((h) => ({
      title: h.title,
      x: h.x,
      y: h.y,
      cells: h.rows.map((row) =>
        row.map((cell) => ({
          trial: cell.trial?.key ?? null,
          status: cell.trial?.status ?? null,
          ndcg10: cell.ndcg10,
          memoryBytes: cell.memoryBytes,
          exceedsBudget: cell.exceedsBudget,
          best: cell.best,
        }))
      ),
    })),
  };
}

function cursorParam(text: string | undefined): number | null {
  if (text === undefined || text === "") return 0;
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}
