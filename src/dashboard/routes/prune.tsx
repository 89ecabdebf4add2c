/**
 * Pruning evaluations: `/prune/:id` draws one; `/runs/:id/prune` sends to a run's newest. The
 * tables are read through their own read-only connection (src/store/prune.ts).
 */
import type { Hono } from "hono";
import { PruneReader } from "../../store/prune.ts";
import { pruneHref, PrunePage } from "../pages/prune.tsx";
import { layoutPrune } from "../prune.ts";
import { type Dash, fail, isRefusal, page, runOf, validId } from "./common.tsx";

const readers = new WeakMap<Dash, PruneReader>();

function readerOf(d: Dash): PruneReader {
  let r = readers.get(d);
  if (!r) {
    const reader = PruneReader.open(d.runsDir);
    d.signal?.addEventListener("abort", () => reader.close(), { once: true });
    readers.set(d, reader);
    r = reader;
  }
  return r;
}

/** The page of a run's newest pruning evaluation, or null when it has none. */
export function latestPruneHref(d: Dash, runId: string): string | null {
  const [newest] = readerOf(d).evaluationsOfRun(runId);
  return newest ? pruneHref(newest.id) : null;
}

export function pruneRoutes(app: Hono, d: Dash): void {
  app.get("/prune/:id", (c) => {
    const id = c.req.param("id");
    if (!validId(id)) return fail(c, 400, "invalid evaluation id");
    const found = readerOf(d).evaluation(id);
    if (!found) return fail(c, 404, `no pruning evaluation "${id}"`);
    const layout = layoutPrune(found.evaluation, found.results);
    return page(c, <PrunePage {...found} layout={layout} />);
  });

  app.get("/runs/:id/prune", (c) => {
    const run = runOf(d, c);
    if (isRefusal(run)) return run;
    const href = latestPruneHref(d, run.id);
    return href ? c.redirect(href, 302) : fail(c, 404, `run "${run.id}" has no pruning evaluation`);
  });
}
