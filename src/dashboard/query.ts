/**
 * Filtering, search and sorting of the runs list from query parameters, so that the list works
 * without JavaScript (sort links and a filter form) and `/api/runs` answers the same queries.
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

/** Which runs the list holds: the ones in use (the default), the archived ones, or all. */
export const SHOW = ["active", "archived", "all"] as const;
export type Show = typeof SHOW[number];

export interface RunQuery {
  status: string;
  dataset: string;
  loss: string;
  tag: string;
  show: Show;
  /** Search terms, all of which a run must match (see `matchesSearch`). */
  q: string;
  sort: SortColumn;
  dir: "asc" | "desc";
}

export const DEFAULT_QUERY: RunQuery = {
  status: "",
  dataset: "",
  loss: "",
  tag: "",
  show: "active",
  q: "",
  sort: "created",
  dir: "desc",
};

/** Longest search accepted; beyond it the terms are cut (no run has a value that long). */
const MAX_SEARCH = 500;

/** Reads the query; unknown sort columns, directions and views fall back to the defaults. */
export function parseRunQuery(get: (name: string) => string | undefined): RunQuery {
  const sort = get("sort") ?? "";
  const dir = get("dir");
  const show = get("show") ?? "";
  return {
    status: get("status") ?? "",
    dataset: get("dataset") ?? "",
    loss: get("loss") ?? "",
    tag: get("tag") ?? "",
    show: (SHOW as readonly string[]).includes(show) ? show as Show : DEFAULT_QUERY.show,
    q: (get("q") ?? "").trim().slice(0, MAX_SEARCH),
    // An own property only: "constructor" or "toString" are in SORT_COLUMNS through its prototype.
    sort: Object.hasOwn(SORT_COLUMNS, sort) ? sort as SortColumn : DEFAULT_QUERY.sort,
    dir: dir === "asc" || dir === "desc" ? dir : DEFAULT_QUERY.dir,
  };
}

/** One search term: `key=value`, `key>n`, `key<n` over config values, or plain text. */
export type Term =
  | { kind: "text"; text: string }
  | { kind: "eq"; key: string; text: string }
  | { kind: "cmp"; key: string; op: "<" | ">"; n: number };

export function parseSearch(q: string): Term[] {
  return q.toLowerCase().split(/\s+/).filter(Boolean).map((t): Term => {
    const m = /^([^=<>]+)([=<>])(.*)$/.exec(t);
    if (!m || m[3] === "") return { kind: "text", text: t };
    const [, key, op, rest] = m;
    if (op === "=") return { kind: "eq", key, text: rest };
    const n = Number(rest);
    return Number.isFinite(n)
      ? { kind: "cmp", key, op: op as "<" | ">", n }
      : { kind: "text", text: t };
  });
}

/** A config value as search text: strings as they are, the rest as JSON. */
function text(v: unknown): string {
  return (typeof v === "string" ? v : JSON.stringify(v) ?? "").toLowerCase();
}

/** The config values a term names, in any case: `batchsize=128` finds `batchSize`. */
function configValues(r: RunView, key: string): unknown[] {
  return Object.entries(r.config).filter(([k]) => k.toLowerCase() === key).map(([, v]) => v);
}

/**
 * Plain text matches the name, id, dataset, objective, tags, note or any config value;
 * `key=value` matches a config value exactly (as text), `key>n` and `key<n` compare numbers.
 */
export function matchesSearch(r: RunView, terms: readonly Term[]): boolean {
  return terms.every((t) => {
    if (t.kind === "eq") return configValues(r, t.key).some((v) => text(v) === t.text);
    if (t.kind === "cmp") {
      return configValues(r, t.key).some((v) =>
        typeof v === "number" && (t.op === "<" ? v < t.n : v > t.n)
      );
    }
    const fields = [r.name, r.id, r.dataset, r.loss ?? "", r.objective ?? "", r.note, ...r.tags];
    return fields.some((f) => f.toLowerCase().includes(t.text)) ||
      Object.values(r.config).some((v) => text(v).includes(t.text));
  });
}

export function applyRunQuery(runs: readonly RunView[], q: RunQuery): RunView[] {
  const terms = parseSearch(q.q);
  const kept = runs.filter((r) =>
    (q.show === "all" || (q.show === "archived") === (r.archivedAt !== null)) &&
    (!q.status || r.status === q.status) &&
    (!q.dataset || r.dataset === q.dataset) &&
    (!q.loss || r.loss === q.loss) &&
    (!q.tag || r.tags.includes(q.tag)) &&
    matchesSearch(r, terms)
  );
  const key = SORT_COLUMNS[q.sort];
  const sign = q.dir === "asc" ? 1 : -1;
  // Missing values (the negatives of a full softmax, a run not yet validated) sort last either way.
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
