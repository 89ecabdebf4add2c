/**
 * A runs folder for dashboard tests: runs written through the real RunStore (finished, running,
 * failed, lost, a full softmax with a memory limit, one named like an HTML injection) and a sweep
 * written through the real SweepStore.
 */
import { LOST_AFTER_SECONDS, RunStore } from "../../src/store/runs.ts";
import { type Param, SweepStore, type TrialStatus } from "../../src/store/sweeps.ts";

export const MiB = 1024 * 1024;

export const HOSTILE_NAME = `<script>alert("name")</script>`;
export const HOSTILE_CONFIG = `<img src=x onerror=alert(1)>`;

export interface Fixture {
  dir: string;
  store: RunStore;
  sweeps: SweepStore;
  ids: {
    finished: string;
    sampled: string;
    running: string;
    failed: string;
    /** Killed after two epochs: recorded as running, its heartbeat long stopped. */
    lost: string;
    /** `--loss cce` with `--memory-limit 100MiB`. */
    fullSoftmax: string;
    sweep: string;
    /** The sweep trial with the best NDCG@10 under the budget. */
    bestTrialRun: string;
  };
  cleanup(): Promise<void>;
}

interface SeedOptions {
  epochs: number;
  stepsPerEpoch: number;
  /** Valid NDCG@10 of the last epoch. */
  ndcg: number;
  peak: number;
  tested: boolean;
}

const KS = [1, 5, 10, 20, 100];

function ranking(ndcg10: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of KS) {
    const scale = Math.min(1, Math.log2(k + 1) / Math.log2(11));
    out[`hr@${k}`] = Math.min(1, ndcg10 * 1.6 * scale);
    out[`ndcg@${k}`] = ndcg10 * scale;
    out[`mrr@${k}`] = ndcg10 * 0.8 * scale;
    out[`coverage@${k}`] = Math.min(1, 0.1 * k);
  }
  return out;
}

/** Per-step loss, per-epoch loss, validation metrics, peak bytes and seconds, like the trainer. */
export async function seedMetrics(store: RunStore, id: string, o: SeedOptions): Promise<void> {
  let step = 0;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const points = [];
    for (let s = 0; s < o.stepsPerEpoch; s++) {
      step++;
      points.push({ epoch, step, key: "train_loss_step", value: 8 / Math.sqrt(step) + 1 });
    }
    points.push({ epoch, step, key: "train_loss", value: 8 / Math.sqrt(step) + 1.1 });
    points.push({ epoch, step, key: "epoch_seconds", value: 20 + epoch });
    points.push({ epoch, step, key: "peak_bytes", value: o.peak * (0.9 + 0.1 * epoch / o.epochs) });
    const valid = ranking(o.ndcg * epoch / o.epochs);
    for (const [k, v] of Object.entries(valid)) {
      points.push({ epoch, step, key: `valid_${k}`, value: v });
    }
    await store.addMetrics(id, points);
  }
  if (o.tested) {
    const point = (prefix: string) => ([k, v]: [string, number]) => ({
      epoch: o.epochs,
      step,
      key: `${prefix}${k}`,
      value: v,
    });
    await store.addMetrics(id, [
      ...Object.entries(ranking(o.ndcg * 0.95)).map(point("test_")),
      ...Object.entries(ranking(0.027)).map(point("mostpop_test_")),
    ]);
  }
}

function config(over: Record<string, unknown>): Record<string, unknown> {
  return {
    data: null,
    catalog: "small",
    loss: "ce",
    negatives: 256,
    sampler: "uniform",
    batchSize: 128,
    seqLen: 50,
    epochs: 3,
    lr: 0.001,
    dim: 64,
    blocks: 2,
    ...over,
  };
}

/** The fixture in `<dir>/runs.sqlite`, or in the PostgreSQL store `storeUrl` names. */
export async function makeFixture(storeUrl: string | null = null): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "cutrec-dash-" });
  const sweeps = await SweepStore.open(dir, storeUrl);
  const store = sweeps.runs;
  const add = async (
    id: string,
    name: string,
    cfg: Record<string, unknown>,
    seed: SeedOptions | null,
    end: { status: "finished" | "failed" | "running" | "lost"; wall?: number; error?: string },
    sweepId?: string,
  ) => {
    await store.createRun({ id, name, dataset: "synthetic-small", config: config(cfg), sweepId });
    if (seed) await seedMetrics(store, id, seed);
    if (end.status === "running" || end.status === "lost") {
      if (seed) await store.update(id, { bestValidNdcg10: seed.ndcg });
      if (seed) await store.update(id, { checkpoint: `${dir}/${id}/last.safetensors` });
      if (end.status === "lost") {
        // Its last beat came two minutes after it started, and nothing since.
        const created = Date.parse((await store.getRun(id))!.createdAt);
        await store.heartbeat(id, new Date(created - (LOST_AFTER_SECONDS + 600) * 1000));
        await store.db.run("update runs set created_at = ? where id = ?", [
          new Date(created - (LOST_AFTER_SECONDS + 720) * 1000).toISOString(),
          id,
        ]);
      }
      return;
    }
    await store.update(id, {
      status: end.status,
      wallSeconds: end.wall,
      peakBytes: seed?.peak,
      bestValidNdcg10: end.status === "finished" ? seed?.ndcg : undefined,
      error: end.error ?? null,
      finished: true,
    });
  };

  const ids = {
    finished: "20261129-100000-aaaaaa",
    sampled: "20261129-100100-bbbbbb",
    running: "20261129-100200-cccccc",
    failed: "20261129-100300-dddddd",
    lost: "20261129-100400-eeeeee",
    fullSoftmax: "20261129-100500-ffffff",
    sweep: "sweep-20261129-a1",
    bestTrialRun: "20261129-110100-s00003",
  };
  await add(
    ids.finished,
    "beauty-ce",
    { loss: "ce" },
    { epochs: 3, stepsPerEpoch: 10, ndcg: 0.31, peak: 120 * MiB, tested: true },
    { status: "finished", wall: 300 },
  );
  await add(
    ids.sampled,
    "beauty-ce-",
    { loss: "ce-", negatives: 128, batchSize: 256 },
    { epochs: 3, stepsPerEpoch: 8, ndcg: 0.27, peak: 60 * MiB, tested: true },
    { status: "finished", wall: 95 },
  );
  await add(
    ids.running,
    HOSTILE_NAME,
    { loss: "bce", data: HOSTILE_CONFIG },
    { epochs: 1, stepsPerEpoch: 5, ndcg: 0.05, peak: 30 * MiB, tested: false },
    { status: "running" },
  );
  await add(
    ids.failed,
    "beauty-gbce",
    { loss: "gbce", negatives: 64 },
    null,
    { status: "failed", wall: 3, error: "loss became NaN at epoch 1, step 3" },
  );

  await add(
    ids.lost,
    "killed-cce-",
    { loss: "cce-", negatives: 256, sampler: "shared" },
    { epochs: 2, stepsPerEpoch: 6, ndcg: 0.12, peak: 80 * MiB, tested: false },
    { status: "lost" },
  );
  await add(
    ids.fullSoftmax,
    "beauty-cce",
    { loss: "cce", negatives: 256, memoryLimit: 100 * MiB, filterEps: 0 },
    { epochs: 3, stepsPerEpoch: 4, ndcg: 0.3, peak: 50 * MiB, tested: true },
    { status: "finished", wall: 200 },
  );

  const grid = { negatives: [32, 128, 512], batchSize: [64, 256] };
  await sweeps.createOrGetSweep({
    id: ids.sweep,
    name: "negatives × batch",
    defaultName: "",
    args: { loss: "ce-", epochs: 3 },
    grid,
    budgetBytes: 100 * MiB,
  });
  await sweeps.setSweepStatus(ids.sweep, "finished");
  // [negatives, batchSize, status, ndcg, estimate MiB, peak MiB]
  const cells: [number, number, TrialStatus, number | null, number, number | null][] = [
    [32, 64, "finished", 0.21, 20, 22],
    [128, 64, "finished", 0.25, 40, 41],
    [512, 64, "finished", 0.27, 90, 95],
    [32, 256, "finished", 0.23, 45, 47],
    [128, 256, "failed", null, 85, null],
    [512, 256, "exceeds_budget", null, 300, null],
  ];
  for (const [i, [negatives, batchSize, status, ndcg, estimate, peak]] of cells.entries()) {
    const key = `negatives=${negatives},batchSize=${batchSize}`;
    const id = status === "exceeds_budget" ? null : `20261129-110100-s0000${i + 1}`;
    if (id) {
      await add(
        id,
        `sweep ${key}`,
        { loss: "ce-", negatives, batchSize },
        ndcg === null ? null : {
          epochs: 3,
          stepsPerEpoch: 4,
          ndcg,
          peak: (peak ?? estimate) * MiB,
          tested: true,
        },
        status === "failed"
          ? { status: "failed", wall: 2, error: "out of GPU memory" }
          : { status: "finished", wall: 40 },
        ids.sweep,
      );
    }
    const params: Record<string, Param> = { negatives, batchSize };
    await sweeps.upsertTrial({
      sweepId: ids.sweep,
      key,
      params,
      status,
      runId: id,
      estimateBytes: estimate * MiB,
      peakBytes: peak === null ? null : peak * MiB,
      error: status === "failed" ? "out of GPU memory" : null,
      startedAt: "2026-11-29T11:01:00.000Z",
      finishedAt: status === "pending" ? null : "2026-11-29T11:02:00.000Z",
      worker: null,
      attempt: status === "pending" ? 0 : 1,
    });
  }
  return {
    dir,
    store,
    sweeps,
    ids,
    async cleanup() {
      await sweeps.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
