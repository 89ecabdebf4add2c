/** Route tests of the embeddings page and its JSON, through `app.request()` on a fixture. */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../src/dashboard/app.tsx";
import { POPULARITY } from "../../src/dashboard/item_embeddings.ts";
import {
  embeddingsHeaderPath,
  readEmbeddings,
  writeEmbeddings,
} from "../../src/store/embeddings.ts";
import {
  CLASSES,
  CLIENTS,
  type EmbeddingsFixture,
  ITEM_DIM,
  ITEMS,
  makeEmbeddingsFixture,
  SEQUENCES,
} from "./embeddings_fixture.ts";

async function withApp(fn: (app: Hono, fx: EmbeddingsFixture) => Promise<void>): Promise<void> {
  const fx = await makeEmbeddingsFixture();
  const abort = new AbortController();
  try {
    await fn(createApp({ runsDir: fx.dir, signal: abort.signal }), fx);
  } finally {
    abort.abort();
    await fx.cleanup();
  }
}

async function text(res: Response, status = 200): Promise<string> {
  assert.equal(res.status, status);
  return await res.text();
}

/** Asks the API until UMAP is there (a worker computes it), then answers with it. */
// deno-lint-ignore no-explicit-any
async function untilUmap(app: Hono, path: string): Promise<any> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    const body = await (await app.request(path)).json();
    if (body.method === "umap") return body;
    assert.equal(body.pending, true);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no UMAP at ${path} after a minute`);
}

Deno.test({
  name: "client embeddings: page, PCA at once, then the cached UMAP; run page links it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withApp(async (app, fx) => {
      const id = fx.ids.clients;
      const run = await text(await app.request(`/runs/${id}`));
      assert.match(run, new RegExp(`href="/runs/${id}/embeddings\\?kind=clients"`));
      assert.doesNotMatch(
        await text(await app.request(`/runs/${fx.ids.plain}`)),
        /embeddings-link/,
      );

      const page = await text(await app.request(`/runs/${id}/embeddings`));
      assert.match(page, /400 clients × 16 dimensions · coloured by target/);
      assert.match(page, /data-method="pca"/);
      assert.match(
        page,
        /PCA: the two leading components hold \d+% of the variance\. UMAP is being/,
      );
      assert.equal([...page.matchAll(/<span class="dot"/g)].length, CLASSES);
      assert.match(page, /<script type="module" src="\/static\/embeddings.js">/);

      const api = `/api/runs/${id}/embeddings/clients`;
      const first = await (await app.request(api)).json();
      assert.equal(first.count, CLIENTS);
      assert.equal(first.x.length, CLIENTS);
      assert.equal(first.ids[3], "c0003");
      assert.equal(first.colour.kind, "categories");
      assert.deepEqual(first.colour.index.slice(0, 5), [0, 1, 2, 3, 0]);
      assert.deepEqual(first.colour.values.slice(0, 5), [0, 1, 2, 3, 0]);

      const umap = await untilUmap(app, api);
      assert.equal(umap.pending, false);
      assert.match(umap.note, /^UMAP \(umap-js: 15 neighbours, min_dist 0.1, seed 42\)/);
      assert.ok(Deno.statSync(`${fx.dir}/${id}/embeddings-clients.map-umap.json`).isFile);
      assert.match(await text(await app.request(`/runs/${id}/embeddings`)), /data-method="umap"/);
      // The static script is served like the others.
      const js = await app.request("/static/embeddings.js");
      assert.match(js.headers.get("content-type")!, /^text\/javascript/);
      assert.match(await js.text(), /figure\.embedding-map/);
    });
  },
});

Deno.test("embeddings: unknown kinds, runs without them and bad ids are refused", async () => {
  await withApp(async (app, fx) => {
    const page = (path: string) => app.request(path);
    assert.equal((await page(`/runs/${fx.ids.clients}/embeddings?kind=users`)).status, 400);
    assert.match(
      await text(await page(`/runs/${fx.ids.clients}/embeddings?kind=items`), 404),
      /has no items embeddings/,
    );
    assert.equal((await page(`/runs/${fx.ids.plain}/embeddings`)).status, 404);
    assert.equal((await page(`/runs/nope/embeddings`)).status, 404);
    assert.equal((await page(`/runs/..%2Fx/embeddings`)).status, 400);
    const bad = await page(`/api/runs/${fx.ids.plain}/embeddings/clients`);
    assert.equal(bad.status, 404);
    assert.match((await bad.json()).error, /no clients embeddings/);
    // A run in training: its checkpoint is still changing, so no items are derived from it.
    assert.equal((await page(`/runs/${fx.ids.training}/embeddings`)).status, 404);
    assert.equal(readEmbeddings(`${fx.dir}/${fx.ids.training}`, "items"), null);
  });
});

Deno.test({
  name: "SASRec items: written once from the checkpoint, coloured by training popularity",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withApp(async (app, fx) => {
      const id = fx.ids.sasrec;
      const runDir = `${fx.dir}/${id}`;
      assert.match(
        await text(await app.request(`/runs/${id}`)),
        new RegExp(`href="/runs/${id}/embeddings\\?kind=items"`),
      );
      const page = await text(await app.request(`/runs/${id}/embeddings`));
      assert.match(
        page,
        /24 items × 8 dimensions · coloured by popularity \(training interactions\)/,
      );
      assert.match(page, /class="scale" aria-label="colour scale of popularity/);

      const e = readEmbeddings(runDir, "items")!;
      assert.equal(e.count, ITEMS);
      assert.equal(e.dim, ITEM_DIM);
      assert.equal(e.colour!.name, POPULARITY);
      // Leave-one-out trains on all but each user's last two items; ids are the file's own.
      const expected = new Map<string, number>();
      for (const s of SEQUENCES) {
        for (const item of s.slice(0, -2)) {
          expected.set(String(item), (expected.get(String(item)) ?? 0) + 1);
        }
      }
      for (let i = 0; i < e.count; i++) {
        assert.equal(e.colour!.values[i], expected.get(e.ids[i]) ?? 0, `item ${e.ids[i]}`);
        // Row i of the written table is row i + 1 (past padding) of the checkpoint's.
        assert.equal(e.vectors[i * ITEM_DIM], i + 1);
      }
      // Written once: a second visit reads the file.
      const written = Deno.statSync(embeddingsHeaderPath(runDir, "items")).mtime!.getTime();
      await new Promise((r) => setTimeout(r, 20));
      await text(await app.request(`/api/runs/${id}/embeddings/items`));
      assert.equal(Deno.statSync(embeddingsHeaderPath(runDir, "items")).mtime!.getTime(), written);
      await untilUmap(app, `/api/runs/${id}/embeddings/items`);

      // Data that moved away: the page says which file the popularity needed.
      const moved = await text(await app.request(`/runs/${fx.ids.missingData}/embeddings`), 409);
      assert.match(moved, /item popularity needs run .* training data \(.*gone\.txt\)/);
    });
  },
});

Deno.test("a few points stay PCA and say why; embeddings written later are linked", async () => {
  await withApp(async (app, fx) => {
    const id = fx.ids.plain;
    writeEmbeddings(`${fx.dir}/${id}`, {
      kind: "items",
      ids: ["a", "b", "c", "d", "e"],
      dim: 2,
      vectors: Float32Array.from([0, 0, 1, 0, 2, 0, 3, 1, 4, 1]),
    });
    assert.match(await text(await app.request(`/runs/${id}`)), /embeddings\?kind=items/);
    const body = await (await app.request(`/api/runs/${id}/embeddings/items`)).json();
    assert.equal(body.method, "pca");
    assert.equal(body.pending, false);
    assert.match(body.note, /; 5 points are too few for UMAP \(it needs 16\)\.$/);
    assert.equal(body.colour.kind, "plain");
    assert.equal(body.colour.name, null);
    const page = await text(await app.request(`/runs/${id}/embeddings`));
    assert.doesNotMatch(page, /coloured by/);
  });
});
