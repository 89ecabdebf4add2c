/**
 * A run session: everything a training run owns besides the arithmetic. It creates or reopens the
 * run's store record, writes its configuration, keeps its heartbeat (a run whose process dies
 * reads back as lost), buffers step metrics, saves and restores checkpoints, and records how the
 * run ended. Any model and objective train inside one (loop.ts).
 */
import { HEARTBEAT_SECONDS, type MetricPoint, newRunId, RunStore } from "../store/runs.ts";
import { storeLabel } from "../store/open.ts";
import type { Module } from "../nn/module.ts";
import type { Adam } from "./optim.ts";
import {
  loadCheckpoint,
  saveCheckpoint,
  type TrainingPosition,
  writeConfig,
} from "./checkpoint.ts";
import type { MetricGroup } from "./events.ts";
import type { Logger } from "./log.ts";

export interface SessionOptions {
  /** The runs folder (store and one folder per run). */
  out: string;
  /** Continue this run from its last checkpoint instead of creating one. */
  resume: string | null;
  /** A new run's name and dataset label. */
  name: string;
  dataset: string;
  /** The run store: a postgres:// URL; null: `<out>/runs.sqlite`. */
  store?: string | null;
  /** The configuration recorded with the run (and, on resume, its updated form). */
  config: Record<string, unknown>;
  /** Written beside the checkpoints as config.json (the config plus data facts). */
  configFile: Record<string, unknown>;
  sweepId?: string;
  logger: Logger;
  /** Called after each recorded metric batch (dashboards, tests). */
  onMetrics?: () => void;
}

/** Step metrics are written to the store in batches of this many. */
const METRIC_BATCH = 20;

export class RunSession {
  private readonly pending: MetricPoint[] = [];
  private readonly beat: ReturnType<typeof setInterval>;
  private closed = false;

  private constructor(
    private readonly store: RunStore,
    readonly runId: string,
    readonly runDir: string,
    readonly resumed: boolean,
    private readonly opts: SessionOptions,
  ) {
    // A missed beat (the store busy, a database restarting) is made up by the next one.
    this.beat = setInterval(
      () => this.store.heartbeat(runId).catch(() => {}),
      HEARTBEAT_SECONDS * 1000,
    );
    // A heartbeat must never keep a finished process alive.
    Deno.unrefTimer(this.beat);
  }

  /** Opens a new run, or reopens `opts.resume` (an error when the store has no such run). */
  static async open(opts: SessionOptions): Promise<RunSession> {
    const store = await RunStore.open(opts.out, opts.store ?? null);
    try {
      if (opts.resume) {
        if (!(await store.getRun(opts.resume))) {
          throw new Error(`--resume: no run "${opts.resume}" in ${opts.out}`);
        }
        const runDir = `${opts.out}/${opts.resume}`;
        await store.reopenRun(opts.resume);
        await store.updateConfig(opts.resume, opts.config);
        await writeConfig(`${runDir}/config.json`, opts.configFile);
        return new RunSession(store, opts.resume, runDir, true, opts);
      }
      const runId = newRunId();
      const runDir = `${opts.out}/${runId}`;
      Deno.mkdirSync(runDir, { recursive: true });
      await store.createRun({
        id: runId,
        name: opts.name,
        dataset: opts.dataset,
        config: opts.config,
        sweepId: opts.sweepId,
      });
      await writeConfig(`${runDir}/config.json`, opts.configFile);
      return new RunSession(store, runId, runDir, false, opts);
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  /**
   * Restores the last checkpoint into the model and optimiser and drops the metrics recorded
   * after it (the resumed run records them again).
   */
  async restore(model: Module, optimizer: Adam): Promise<TrainingPosition> {
    const position = await loadCheckpoint(this.checkpointPath("last"), model, optimizer);
    await this.store.truncateMetrics(this.runId, position.step);
    this.opts.logger.emit({
      event: "resume",
      run: this.runId,
      epoch: position.epoch,
      step: position.step,
    });
    return position;
  }

  private checkpointPath(kind: "best" | "last"): string {
    return `${this.runDir}/${kind}.safetensors`;
  }

  /** The best weights so far (no optimiser state: they are for evaluation). */
  async saveBest(model: Module, position: TrainingPosition): Promise<void> {
    await saveCheckpoint(this.checkpointPath("best"), model, null, position);
  }

  /** Everything needed to continue: weights, optimiser moments and the position. */
  async saveLast(model: Module, optimizer: Adam, position: TrainingPosition): Promise<void> {
    await saveCheckpoint(this.checkpointPath("last"), model, optimizer, position);
    await this.store.update(this.runId, { checkpoint: this.checkpointPath("last") });
  }

  async loadBest(model: Module): Promise<void> {
    await loadCheckpoint(this.checkpointPath("best"), model, null);
  }

  /** A step's metric: buffered, written in batches. */
  async recordStep(point: MetricPoint): Promise<void> {
    this.pending.push(point);
    if (this.pending.length >= METRIC_BATCH) await this.flush();
  }

  /** Writes buffered step metrics and `points` together. */
  async record(points: MetricPoint[] = []): Promise<void> {
    const all = [...this.pending.splice(0), ...points];
    if (!all.length) return;
    await this.store.addMetrics(this.runId, all);
    this.opts.onMetrics?.();
  }

  async flush(): Promise<void> {
    await this.record();
  }

  /** Records a group of metrics as `<prefix><key>` at one epoch and step. */
  async recordGroup(prefix: string, group: MetricGroup, epoch: number, step: number) {
    await this.record(
      Object.entries(group).map(([key, value]) => ({ epoch, step, key: prefix + key, value })),
    );
  }

  /** The run's best validation NDCG@10, the runs list's headline figure. */
  async recordBestNdcg10(value: number): Promise<void> {
    await this.store.update(this.runId, { bestValidNdcg10: value });
  }

  /** Records how the run ended and releases the store. */
  async finish(r: {
    status: "finished" | "failed" | "stopped";
    error: string | null;
    wallSeconds: number;
    peakBytes: number;
  }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.beat);
    try {
      await this.flush();
      await this.store.update(this.runId, { ...r, finished: true });
    } finally {
      await this.store.close();
    }
    if (r.error) this.opts.logger.emit({ event: "failed", run: this.runId, error: r.error });
  }
}

/** The configuration a run was recorded with, or an error naming the run and the store. */
export async function storedRunConfig(
  out: string,
  runId: string,
  storeUrl: string | null = null,
): Promise<Record<string, unknown>> {
  const store = await RunStore.open(out, storeUrl);
  try {
    const run = await store.getRun(runId);
    if (!run) throw new Error(`--resume: no run "${runId}" in ${storeLabel(out, storeUrl)}`);
    return run.config;
  } finally {
    await store.close();
  }
}

/**
 * SIGINT and SIGTERM (Ctrl-C, kill, a scheduler's stop) stop training between two steps, so the
 * run is recorded as stopped with its last checkpoint rather than left running.
 */
export function stopOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  return {
    signal: abort.signal,
    dispose: () => {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
    },
  };
}
