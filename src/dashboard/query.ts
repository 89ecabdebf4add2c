/**
 * Filtering and sorting of the runs list from query parameters, so that the list works without
 * JavaScript (sort links and a filter form) and `/api/runs` answers the same queries.
 */
import type { RunView } from "./runs.ts";

export const SORT_COLUMNS = {
  name: (r: RunView) => r.name.toLowerCase(),
  status: (r: RunView) => r.status,
  dataset: (r: RunView) => r.dataset.toLowerCase(),
  loss: (r: RunView) => r.loss,
  negatives: (r: RunView) => r.negatives,
  batch: (r: RunView) => r.batchSize,
  ndcg: (r: RunView) => r.bestValidNdcg10,
  peak: (r: RunView) => r.peakBytes,
  duration: (r: RunView) => r.durationSeconds,
  created: (r: RunView) => r.createdAt,
} as const;

export type SortColumn = keyof typeof SORT_COLUMNS;

export interface RunQuery {
  status: string;
  dataset: string;
  loss: string;
  /** Substring of the name or id, any case. */
  q: string;
  sort: SortColumn;
  dir: "asc" | "desc";
}

export const DEFAULT_QUERY: RunQuery = {
  status: "",
  dataset: "",
  loss: "",
  q: "",
  sort: "created",
  dir: "desc",
};

/** Reads the query; unknown sort columns and directions fall back to newest first. */
export function parseRunQuery(get: (name: string) => string | undefined): RunQuery {
  const sort = get("sort") ?? "";
  const dir = get("dir");
  return {
    status: get("status") ?? "",
    dataset: get("dataset") ?? "",
    loss: get("loss") ?? "",
    q: (get("q") ?? "").trim(),
    // An own property only: "constructor" or "toString" are in SORT_COLUMNS through its prototype.
    sort: Object.hasOwn(SORT_COLUMNS, sort) ? sort as SortColumn : DEFAULT_QUERY.sort,
    dir: dir === "asc" || dir === "desc" ? dir : DEFAULT_QUERY.dir,
  };
}

export function applyRunQuery(runs: readonly RunView[], q: RunQuery): RunView[] {
  const needle = q.q.toLowerCase();
  const kept = runs.filter((r) =>
    (!q.status || r.status === q.status) &&
    (!q.dataset || r.dataset === q.dataset) &&
    (!q.loss || r.loss === q.loss) &&
    (!needle || r.name.toLowerCase().includes(needle) || r.id.toLowerCase().includes(needle))
  );
  const key = SORT_COLUMNS[q.sort];
  const sign = q.dir === "asc" ? 1 : -1;
  // Missing values (the K of a full softmax, a run not yet validated) sort last either way.
  return kept.sort((a, b) => {
    const va = key(a);
    const vb = key(b);
    if (va === null && vb === null) return 0;
    if (va === null) return 1;
    if (vb === null) return -1;
    return sign * (va < vb ? -1 : va > vb ? 1 : 0);
  });
}

/** The query string of a list URL, without parameters left at their defaults. */
export function queryString(q: RunQuery): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v !== DEFAULT_QUERY[k as keyof RunQuery]) p.set(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}
