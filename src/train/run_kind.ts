/** What trained a run, told by the `task` its recorded configuration carries. */
export type RunKind = "sasrec" | "lm" | "ssl" | "finetune";

const KINDS: readonly RunKind[] = ["sasrec", "lm", "ssl", "finetune"];

/**
 * The run's kind: its config's `task`, or "sasrec" when there is none (the recommender's runs
 * recorded no task before it was added; every other kind always did). An unknown task is an error
 * naming it.
 */
export function runKindOf(config: Record<string, unknown>): RunKind {
  const task = config.task ?? "sasrec";
  if (!KINDS.includes(task as RunKind)) {
    throw new Error(`a run of task ${JSON.stringify(task)}: expected one of ${KINDS.join(", ")}`);
  }
  return task as RunKind;
}
