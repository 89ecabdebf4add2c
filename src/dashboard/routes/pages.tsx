/** The HTML pages, and the sweep's CSV. */
import type { Hono } from "hono";
import { trialsCsv } from "../../sweep/report.ts";
import { layoutParallel } from "../parcoords.ts";
import { ComparePage } from "../pages/compare.tsx";
import { deleteRefusal, folderSize } from "../deletion.ts";
import { DeletePage } from "../pages/delete.tsx";
import { RunPage } from "../pages/run.tsx";
import { RunsPage } from "../pages/runs.tsx";
import { SweepPage } from "../pages/sweep.tsx";
import { applyRunQuery, parseRunQuery } from "../query.ts";
import { embeddingKindsOf } from "../embedding_view.ts";
import { getRunView, listRunViews, type RunView } from "../runs.ts";
import { type Dash, fail, isRefusal, page, runDetail, runOf, sweepOf, validId } from "./common.tsx";
import { latestPruneHref } from "./prune.tsx";

export function pageRoutes(app: Hono, d: Dash): void {
  app.get("/", async (c) => {
    const all = await listRunViews(d.reader);
    const sweeps = await d.reader.listSweeps();
    const deleted = c.req.query("deleted") ?? "";
    // Never said of a run that still exists, so a link cannot claim a live run was deleted.
    const gone = validId(deleted) && !(await d.reader.getRun(deleted)) ? deleted : null;
    const q = parseRunQuery((name) => c.req.query(name));
    const distinct = (values: (string | null)[]) =>
      [...new Set(values.filter((v): v is string => v !== null))].sort();
    return page(
      c,
      <RunsPage
        runs={applyRunQuery(all, q)}
        total={all.length}
        datasets={distinct(all.map((r) => r.dataset))}
        losses={distinct(all.map((r) => r.loss))}
        tags={distinct(all.flatMap((r) => r.tags))}
        sweeps={sweeps}
        q={q}
        runsDir={d.runsDir}
        deleted={gone}
      />,
    );
  });

  app.get("/runs/:id", async (c) => {
    const run = await runOf(d, c);
    if (isRefusal(run)) return run;
    const sweep = run.sweepId ? await d.reader.getSweepRecord(run.sweepId) : null;
    const { epochs, final } = await runDetail(d, run);
    return page(
      c,
      <RunPage
        run={run}
        epochs={epochs}
        final={final}
        sweep={sweep}
        runsDir={d.runsDir}
        checkpointOnDisk={exists(`${d.runsDir}/${run.id}/last.safetensors`)}
        embeddings={embeddingKindsOf(d.runsDir, run)}
        pruneHref={await latestPruneHref(d, run.id)}
        csrf={d.csrf.token}
      />,
    );
  });

  app.get("/runs/:id/delete", async (c) => {
    const run = await runOf(d, c);
    if (isRefusal(run)) return run;
    const refused = deleteRefusal(run);
    if (refused) return fail(c, 409, refused);
    return page(
      c,
      <DeletePage run={run} folder={folderSize(`${d.runsDir}/${run.id}`)} csrf={d.csrf.token} />,
    );
  });

  app.get("/sweeps/:id", async (c) => {
    const found = await sweepOf(d, c);
    if (isRefusal(found)) return found;
    const { view, layout } = found;
    const parallel = layoutParallel(
      view.sweep.grid,
      view.trials,
      view.sweep.budgetBytes,
      layout.range,
    );
    return page(c, <SweepPage view={view} layout={layout} parallel={parallel} />);
  });

  app.get("/sweeps/:id/trials.csv", async (c) => {
    const found = await sweepOf(d, c);
    if (isRefusal(found)) return found;
    return c.body(trialsCsv(found.view), 200, {
      "Content-Type": "text/csv; charset=utf-8",
      "Content-Disposition": `attachment; filename="${found.view.sweep.id}-trials.csv"`,
    });
  });

  app.get("/compare", async (c) => {
    const ids = [
      ...new Set((c.req.queries("ids") ?? []).flatMap((v) => v.split(",")).filter(Boolean)),
    ];
    if (ids.length < 2 || ids.length > 5) {
      return fail(c, 400, `pick 2 to 5 runs to compare (got ${ids.length})`);
    }
    if (!ids.every(validId)) return fail(c, 400, "invalid run id");
    const runs: RunView[] = [];
    for (const id of ids) {
      const run = await getRunView(d.reader, id);
      if (!run) return fail(c, 404, `no run "${id}"`);
      runs.push(run);
    }
    const finals = [];
    for (const r of runs) finals.push((await runDetail(d, r)).final);
    return page(c, <ComparePage runs={runs} finals={finals} />);
  });
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
