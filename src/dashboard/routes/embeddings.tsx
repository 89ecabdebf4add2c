/** A run's embeddings page and the JSON behind its map. */
import type { Context, Hono } from "hono";
import { EMBEDDING_KINDS, type EmbeddingKind, type Embeddings } from "../../store/embeddings.ts";
import { colourScheme } from "../embedding_colour.ts";
import { embeddingKindsOf, EmbeddingMaps } from "../embedding_view.ts";
import { EmbeddingsPage } from "../pages/embeddings.tsx";
import type { RunView } from "../runs.ts";
import { type Dash, fail, isRefusal, page, runOf } from "./common.tsx";

/** Registers the routes; the returned maps own the UMAP workers (close them with the app). */
export function embeddingRoutes(app: Hono, d: Dash): EmbeddingMaps {
  const maps = new EmbeddingMaps(d.runsDir);

  app.get("/runs/:id/embeddings", async (c) => {
    const found = await embeddingsOf(d, maps, c, c.req.query("kind"));
    if (isRefusal(found)) return found;
    const { run, kinds, kind, e } = found;
    return page(
      c,
      <EmbeddingsPage
        run={run}
        kinds={kinds}
        kind={kind}
        count={e.count}
        dim={e.dim}
        state={maps.map(run, kind, e)}
        scheme={colourScheme(e.count, e.colour)}
      />,
    );
  });

  app.get("/api/runs/:id/embeddings/:kind", async (c) => {
    const found = await embeddingsOf(d, maps, c, c.req.param("kind"));
    if (isRefusal(found)) return found;
    const { run, kind, e } = found;
    const { map, pending, note } = maps.map(run, kind, e);
    const scheme = colourScheme(e.count, e.colour);
    const short = (v: number) => Number(v.toPrecision(6));
    return c.json({
      runId: run.id,
      kind,
      count: e.count,
      dim: e.dim,
      method: map.method,
      pending,
      note,
      x: Array.from(map.x, short),
      y: Array.from(map.y, short),
      ids: e.ids,
      colour: {
        ...scheme,
        name: scheme.kind === "plain" ? null : scheme.name,
        index: Array.from(scheme.index),
        values: e.colour?.values ?? null,
      },
    });
  });

  return maps;
}

type Found = { run: RunView; kinds: EmbeddingKind[]; kind: EmbeddingKind; e: Embeddings };

/** The run, its kinds and the embeddings of the asked kind (the first it has by default). */
async function embeddingsOf(
  d: Dash,
  maps: EmbeddingMaps,
  c: Context,
  asked: string | undefined,
): Promise<Found | Response> {
  const run = await runOf(d, c);
  if (isRefusal(run)) return run;
  if (asked !== undefined && !(EMBEDDING_KINDS as readonly string[]).includes(asked)) {
    return await fail(c, 400, `kind must be one of ${EMBEDDING_KINDS.join(", ")}`);
  }
  const kinds = embeddingKindsOf(d.runsDir, run);
  const kind = (asked as EmbeddingKind | undefined) ?? kinds[0];
  if (!kind || !kinds.includes(kind)) {
    return await fail(c, 404, `run "${run.id}" has no ${asked ?? ""}${asked ? " " : ""}embeddings`);
  }
  let e: Embeddings | null;
  try {
    e = await maps.load(run, kind);
  } catch (err) {
    return await fail(c, 409, (err as Error).message);
  }
  if (!e) return await fail(c, 404, `run "${run.id}" has no ${kind} embeddings`);
  return { run, kinds, kind, e };
}
