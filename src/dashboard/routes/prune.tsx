/**
 * Pruning evaluations: `/prune/:id` draws one; `/runs/:id/prune` sends to a run's newest.
 */
import type { Hono } from "hono";
import { pruneHref, PrunePage } from "../pages/prune.tsx";
import { layoutPrune } from "../prune.ts";
import { type Dash, fail, isRefusal, page, runOf, validId } from "./common.tsx";

/** The page of a run's newest pruning evaluation, or null when it has none. */
export async function latestPruneHref(d: Dash, runId: string): Promise<string | null> {
  const [newest] = await d.reader.pruneEvaluationsOfRun(runId);
  return newest ? pruneHref(newest.id) : null;
}

export function pruneRoutes(app: Hono, d: Dash): void {
  app.get("/prune/:id", async (c) => {
    const id = c.req.param("id");
    if (!validId(id)) return fail(c, 400, "invalid evaluation id");
    const found = await d.reader.pruneEvaluation(id);
    if (!found) return fail(c, 404, `no pruning evaluation "${id}"`);
    const layout = layoutPrune(found.evaluation, found.results);
    return page(c, <PrunePage {...found} layout={layout} />);
  });

  app.get("/runs/:id/prune", async (c) => {
    const run = await runOf(d, c);
    if (isRefusal(run)) return run;
    const href = await latestPruneHref(d, run.id);
    return href ? c.redirect(href, 302) : fail(c, 404, `run "${run.id}" has no pruning evaluation`);
  });
}
