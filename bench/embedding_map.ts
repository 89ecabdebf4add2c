/**
 * How long the embeddings page's maps take at a catalogue's size: PCA and UMAP of `--count`
 * random vectors of `--dim` values (Beauty's 12,101 items × 64 by default), one line each.
 * `deno run -A bench/embedding_map.ts [--count 12101] [--dim 64]`
 */
import { parseArgs } from "node:util";
import { pcaMap, umapMap } from "../src/dashboard/embedding_map.ts";
import { seededRandom } from "../src/tensor/random.ts";

const { values } = parseArgs({
  options: { count: { type: "string", default: "12101" }, dim: { type: "string", default: "64" } },
});
const count = Number(values.count);
const dim = Number(values.dim);
if (!Number.isInteger(count) || count < 16 || !Number.isInteger(dim) || dim < 1) {
  throw new Error(
    `--count must be an integer ≥ 16 and --dim ≥ 1 (got ${values.count}, ${values.dim})`,
  );
}
const random = seededRandom(1);
const e = { count, dim, vectors: Float32Array.from({ length: count * dim }, () => random() - 0.5) };
for (const [name, map] of [["PCA", pcaMap], ["UMAP", umapMap]] as const) {
  const start = performance.now();
  map(e);
  console.log(`${name} of ${count} × ${dim}: ${((performance.now() - start) / 1000).toFixed(2)} s`);
}
