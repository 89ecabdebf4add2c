/**
 * A SASRec run's item embeddings, for its embeddings page: the item table of the run's checkpoint
 * (`item_embedding`, rows 1..items; row 0 is padding) with each item's popularity (its
 * interactions in the run's training split, read from the run's own data settings). They are
 * written once beside the checkpoint with writeEmbeddings (kind "items") and read from there after,
 * until a newer checkpoint replaces them.
 */
import { itemCounts } from "../data/dataset.ts";
import {
  type Embeddings,
  embeddingsHeaderPath,
  readEmbeddings,
  writeEmbeddings,
} from "../store/embeddings.ts";
import type { RunRecord } from "../store/read.ts";
import { DEFAULTS, type TrainConfig } from "../train/config.ts";
import { prepareData } from "../train/recommender.ts";
import { runKindOf } from "../train/run_kind.ts";
import { readSafetensors } from "../train/safetensors.ts";

/** SASRec's item table in its checkpoints (src/models/sasrec.ts). */
export const ITEM_TABLE = "item_embedding";
export const POPULARITY = "popularity (training interactions)";

/** A recommender (SASRec) run, by the task its config records. */
export function isSasRecRun(run: Pick<RunRecord, "config">): boolean {
  return runKindOf(run.config) === "sasrec";
}

/** The checkpoint its items come from: the best weights, else the last ones; null when neither. */
export function sasRecCheckpoint(runDir: string): string | null {
  for (const name of ["best", "last"]) {
    const path = `${runDir}/${name}.safetensors`;
    if (modified(path) !== null) return path;
  }
  return null;
}

/**
 * Whether the run's item embeddings are yet to be written (none, or older than its checkpoint).
 * A run in training is left alone: its checkpoint is still changing.
 */
export function itemEmbeddingsDue(run: RunRecord, runDir: string): boolean {
  if (!isSasRecRun(run) || run.status === "running") return false;
  const checkpoint = sasRecCheckpoint(runDir);
  if (!checkpoint) return false;
  const written = modified(embeddingsHeaderPath(runDir, "items"));
  return written === null || written < modified(checkpoint)!;
}

/**
 * Reads the item table and the training data's item counts and writes them as the run's "items"
 * embeddings. The data layer keeps its binary cache of the data file under `<runsDir>/cache`, as
 * training does.
 */
export async function writeItemEmbeddings(
  run: RunRecord,
  runsDir: string,
): Promise<Embeddings> {
  const runDir = `${runsDir}/${run.id}`;
  const checkpoint = sasRecCheckpoint(runDir);
  if (!checkpoint) throw new Error(`${runDir}: no best.safetensors or last.safetensors`);
  const table = (await readSafetensors(checkpoint)).tensors[ITEM_TABLE];
  if (!table || table.dtype !== "F32" || table.shape.length !== 2) {
    throw new Error(`${checkpoint}: no float32 "${ITEM_TABLE}" table (is it a SASRec checkpoint?)`);
  }
  const [rows, dim] = table.shape;
  const items = rows - 1;
  const counts = await trainingCounts(run, runsDir, checkpoint, items);
  const ids = Array.from({ length: items }, (_, i) => counts.ids?.[i + 1] || String(i + 1));
  writeEmbeddings(runDir, {
    kind: "items",
    ids,
    dim,
    vectors: Float32Array.from(table.data.subarray(dim)),
    colour: { name: POPULARITY, values: Array.from(counts.perItem.subarray(1)) },
  });
  return readEmbeddings(runDir, "items")!;
}

/** Interactions of each item in the run's training split, with the items' original ids. */
async function trainingCounts(
  run: RunRecord,
  runsDir: string,
  checkpoint: string,
  items: number,
): Promise<{ perItem: Float64Array; ids?: string[] }> {
  const config = { ...DEFAULTS, ...run.config } as TrainConfig;
  let data;
  try {
    data = await prepareData({ ...config, out: runsDir });
  } catch (err) {
    throw new Error(
      `item popularity needs run ${run.id}'s training data (${config.data ?? config.catalog}): ` +
        (err as Error).message,
    );
  }
  if (data.dataset.items !== items) {
    throw new Error(
      `${checkpoint}: "${ITEM_TABLE}" has ${items} items, but the run's data ` +
        `(${data.label}) has ${data.dataset.items}`,
    );
  }
  return {
    perItem: itemCounts(data.split.train, items),
    ids: data.dataset.originalItemIds,
  };
}

function modified(path: string): number | null {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return null;
  }
}
