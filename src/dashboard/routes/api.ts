/** The JSON API behind the pages, and the live event stream of a run. */
import type { Hono } from "hono";
import { runEvents } from "../events.ts";
import type { SweepLayout } from "../heatmap.ts";
import { toSeries } from "../metrics.ts";
import { applyRunQuery, parseRunQuery } from "../query.ts";
import { listRunViews } from "../runs.ts";
import { type Dash, fail, isRefusal, runDetail, runOf, sweepOf } from "./common.tsx";

export function apiRoutes(app: Hono, d: Dash): void {
  app.get("/api/runs", async (c) => {
    const all = await listRunViews(d.reader);
    const q = parseRunQuery((name) => c.req.query(name));
    return c.json({ total: all.length, runs: applyRunQuery(all, q) });
  });

  app.get("/api/runs/:id", async (c) => {
    const run = await runOf(d, c);
    if (isRefusal(run)) return run;
    return c.json(await runDetail(d, run));
  });

  app.get("/api/runs/:id/metrics", async (c) => {
    const run = await runOf(d, c);
    if (isRefusal(run)) return run;
    const after = cursorParam(c.req.query("after"));
    if (after === null) return fail(c, 400, "after must be a non-negative integer");
    const keys = c.req.query("keys")?.split(",").filter(Boolean);
    const cursor = await d.reader.metricsCursor(run.id);
    const rows = await d.reader.metricRows(run.id, { after, upTo: cursor, keys });
    return c.json({ runId: run.id, cursor, series: toSeries(rows) });
  });

  app.get("/api/runs/:id/events", async (c) => {
    const run = await runOf(d, c);
    if (isRefusal(run)) return run;
    // EventSource resends the last event id when it reconnects.
    const after = cursorParam(c.req.header("last-event-id") ?? c.req.query("after"));
    if (after === null) return fail(c, 400, "after must be a non-negative integer");
    const stream = runEvents({
      reader: d.reader,
      runId: run.id,
      after,
      pollMs: d.pollMs,
      signal: d.signal,
    });
    return c.body(stream, 200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache",
    });
  });

  app.get("/api/sweeps", async (c) => c.json({ sweeps: await d.reader.listSweeps() }));

  app.get("/api/sweeps/:id", async (c) => {
    const found = await sweepOf(d, c);
    if (isRefusal(found)) return found;
    return c.json({ ...found.view, ...sweepJson(found.layout) });
  });
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
