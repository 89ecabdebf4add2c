/**
 * The events a training process reports, one JSON object per line with --json: what the trainer
 * logs and what a sweep reads back from its trial processes, in one typed format.
 */

export type MetricGroup = Record<string, number>;

export type TrainEvent =
  | {
    event: "run";
    run: string;
    dataset: string;
    objective: string;
    estimate_bytes: number;
    adapter: string;
    resumed: boolean;
    [detail: string]: unknown;
  }
  | { event: "resume"; run: string; epoch: number; step: number }
  | {
    event: "epoch";
    epoch: number;
    loss: number;
    seconds: number;
    /** Training throughput, for models that count tokens (language models). */
    tokens_per_second?: number;
    /** Validation metrics, on the epochs that evaluate. */
    valid?: MetricGroup;
  }
  | { event: "early_stop"; epoch: number; best_epoch: number }
  | { event: "failed"; run: string; error: string }
  | {
    event: "done";
    run: string;
    status: "finished" | "failed" | "stopped";
    error: string | null;
    epochs: number;
    best_epoch: number;
    /** Null when no epoch completed. */
    seconds_per_epoch: number | null;
    wall_seconds: number;
    peak_bytes: number;
    estimate_bytes: number;
  }
  | { event: "metrics"; groups: Record<string, MetricGroup> };

/** Reads one line of a training process's output: its event, or null for anything else. */
export function parseTrainEvent(line: string): TrainEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const ev = value as Record<string, unknown>;
  return typeof ev.event === "string" && EVENT_NAMES.has(ev.event) ? value as TrainEvent : null;
}

const EVENT_NAMES = new Set<string>([
  "run",
  "resume",
  "epoch",
  "early_stop",
  "failed",
  "done",
  "metrics",
]);
