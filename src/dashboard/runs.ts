/**
 * A run as the dashboard shows it: the store's record and notes, with what the pages derive from
 * them (the objective read through the registry, the duration, the peak while it trains).
 */
import { describeStoredObjective, OBJECTIVE_NAMES, objectiveOf } from "../loss/objectives.ts";
import { NO_NOTES, type RunNotes, type RunRecord, type StoreReader } from "../store/read.ts";

export interface RunView extends RunRecord, RunNotes {
  /** The objective's name, or the config's `loss` text when the registry does not know it. */
  loss: string | null;
  /** "full softmax", "256 shared", "1 uniform"; null for an unknown objective. */
  objective: string | null;
  /** Negatives per position (per batch when shared); null for a full softmax. */
  negatives: number | null;
  batchSize: number | null;
  /**
   * Wall seconds once recorded; while it trains, seconds since it was created; once lost, from
   * its creation to its last heartbeat (the time it stopped).
   */
  durationSeconds: number | null;
}

export async function viewRun(
  run: RunRecord,
  notes: RunNotes,
  reader: StoreReader,
  now = Date.now(),
): Promise<RunView> {
  const objective = describeStoredObjective(run.config);
  const created = Date.parse(run.createdAt);
  const live = run.status === "running" || run.status === "lost";
  const until = run.status === "lost" ? Date.parse(run.heartbeatAt ?? run.createdAt) : now;
  const since = (until - created) / 1000;
  const batch = run.config.batchSize;
  return {
    ...run,
    ...notes,
    // A live run has written no peak of its own yet: its epochs' peaks are the figure so far.
    peakBytes: run.peakBytes ?? (live ? await reader.recordedPeak(run.id) : null),
    loss: objective?.name ?? (typeof run.config.loss === "string" ? run.config.loss : null),
    objective: objective?.label ?? null,
    negatives: objective?.negatives ?? null,
    batchSize: typeof batch === "number" && Number.isFinite(batch) ? batch : null,
    durationSeconds: run.wallSeconds ??
      (live && Number.isFinite(since) ? Math.max(0, since) : null),
  };
}

/** Every run of the store, newest first. */
export async function listRunViews(reader: StoreReader): Promise<RunView[]> {
  const notes = await reader.allNotes();
  const views: RunView[] = [];
  for (const r of await reader.listRuns()) {
    views.push(await viewRun(r, notes.get(r.id) ?? NO_NOTES, reader));
  }
  return views;
}

export async function getRunView(reader: StoreReader, id: string): Promise<RunView | null> {
  const run = await reader.getRun(id);
  return run ? await viewRun(run, await reader.notes(id), reader) : null;
}

/** "log-q" → "logQ": objectives name their flags; configs store camel-case keys. */
function configKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Every config key that some objective reads (negatives, sampler, filterEps, …). */
const OBJECTIVE_KEYS = new Set(
  OBJECTIVE_NAMES.flatMap((name) => objectiveOf(name).flags.map(configKey)),
);

/**
 * The objective settings a run's config holds but its objective never reads (a full softmax's
 * `negatives`): the config table leaves them out rather than show figures that did not apply.
 * Empty when the objective is not a registered one, since then nothing is known about it.
 */
export function unusedObjectiveKeys(config: Record<string, unknown>): Set<string> {
  const objective = describeStoredObjective(config);
  if (!objective) return new Set();
  const read = new Set(objectiveOf(objective.name).flags.map(configKey));
  return new Set([...OBJECTIVE_KEYS].filter((k) => !read.has(k) && Object.hasOwn(config, k)));
}
