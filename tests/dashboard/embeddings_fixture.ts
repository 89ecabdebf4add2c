/**
 * A runs folder for the embeddings page's tests: an event-sequence run whose client embeddings
 * (four classes of clustered vectors, the class as their colour) were written by writeEmbeddings,
 * a finished SASRec run with a checkpoint holding an item table and a tiny sequence file as its
 * data, the same in training, and a run with no embeddings.
 */
import { writeEmbeddings } from "../../src/store/embeddings.ts";
import { newRunId, RunStore } from "../../src/store/runs.ts";
import { seededRandom } from "../../src/tensor/random.ts";
import { DEFAULTS } from "../../src/train/config.ts";
import { writeSafetensors } from "../../src/train/safetensors.ts";

export const CLIENTS = 400;
export const CLIENT_DIM = 16;
export const CLASSES = 4;
export const ITEMS = 24;
export const ITEM_DIM = 8;
/**
 * 80 users' six items (original ids 101–124), skewed towards the low ids so that popularity
 * spreads over many values; every item is someone's first. Leave-one-out trains on the first four.
 */
export const SEQUENCES: number[][] = (() => {
  const random = seededRandom(3);
  return Array.from(
    { length: 80 },
    (_, u) =>
      Array.from(
        { length: 6 },
        (_, j) => 101 + (j === 0 ? u % ITEMS : Math.floor(ITEMS * random() ** 2)),
      ),
  );
})();

export interface EmbeddingsFixture {
  dir: string;
  ids: { clients: string; sasrec: string; training: string; plain: string; missingData: string };
  cleanup(): Promise<void>;
}

export async function makeEmbeddingsFixture(): Promise<EmbeddingsFixture> {
  const dir = await Deno.makeTempDir({ prefix: "cutrec-embeddings-" });
  const store = await RunStore.open(dir);
  const run = async (name: string, config: Record<string, unknown>, finished = true) => {
    const id = newRunId();
    await store.createRun({ id, name, dataset: String(config.data ?? "synthetic"), config });
    if (finished) await store.update(id, { status: "finished", wallSeconds: 42, finished: true });
    return id;
  };
  const clients = await run("coles-synthetic", { method: "coles", encoder: "gru", epochs: 3 });
  writeClientEmbeddings(`${dir}/${clients}`);

  const data = `${dir}/tiny-sequences.txt`;
  await Deno.writeTextFile(data, SEQUENCES.map((s, u) => `${u + 1} ${s.join(" ")}`).join("\n"));
  const sasrecConfig = { ...DEFAULTS, data, blocks: 1, dim: ITEM_DIM, out: dir };
  const sasrec = await run("tiny-sasrec", sasrecConfig);
  const training = await run("tiny-sasrec-training", sasrecConfig, false);
  const missingData = await run("sasrec-moved-data", { ...sasrecConfig, data: `${dir}/gone.txt` });
  for (const id of [sasrec, training, missingData]) await writeItemTable(`${dir}/${id}`);
  const plain = await run("no-embeddings", { loss: "ce", epochs: 1 });
  await store.close();
  return {
    dir,
    ids: { clients, sasrec, training, plain, missingData },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Clients of class c sit around 2.5·e_c with overlapping noise, the class is the colour, ids c0000…. */
function writeClientEmbeddings(runDir: string): void {
  const random = seededRandom(7);
  const vectors = new Float32Array(CLIENTS * CLIENT_DIM);
  const target: number[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const c = i % CLASSES;
    target.push(c);
    for (let j = 0; j < CLIENT_DIM; j++) {
      vectors[i * CLIENT_DIM + j] = (j === c ? 2.5 : 0) +
        1.2 * (random() + random() + random() - 1.5);
    }
  }
  writeEmbeddings(runDir, {
    kind: "clients",
    ids: Array.from({ length: CLIENTS }, (_, i) => `c${String(i).padStart(4, "0")}`),
    dim: CLIENT_DIM,
    vectors,
    colour: { name: "target", values: target },
  });
}

/** A SASRec-shaped checkpoint: row d of the item table starts with d (row 0 is padding). */
async function writeItemTable(runDir: string): Promise<void> {
  await Deno.mkdir(runDir, { recursive: true });
  const data = new Float32Array((ITEMS + 1) * ITEM_DIM);
  for (let d = 0; d <= ITEMS; d++) {
    for (let j = 0; j < ITEM_DIM; j++) data[d * ITEM_DIM + j] = j === 0 ? d : Math.sin(d * (j + 1));
  }
  await writeSafetensors(`${runDir}/best.safetensors`, {
    item_embedding: { dtype: "F32", shape: [ITEMS + 1, ITEM_DIM], data },
    position_embedding: {
      dtype: "F32",
      shape: [4, ITEM_DIM],
      data: new Float32Array(4 * ITEM_DIM),
    },
  });
}
