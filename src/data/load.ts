/**
 * One entry point for a dataset on disk: detects the format, reads, filters, and caches the
 * result (the cache key includes every option that changes the result).
 */
import { type Dataset, requireCatalog } from "./dataset.ts";
import { loadOrBuild } from "./cache.ts";
import { type KCore, kCore } from "./filter.ts";
import { readHead } from "./lines.ts";
import { type InteractionOptions, readInteractions, readSequences } from "./readers.ts";

export type DataFormat = "interactions" | "sequences";

export interface LoadOptions extends InteractionOptions {
  /** "auto" (default): see `detectFormat`. */
  format?: "auto" | DataFormat;
  /** k-core filter applied after reading (users and items with ≥ k interactions). */
  kCore?: number | Partial<KCore>;
  /** false: no cache; a string: the cache directory; default true (runs/cache). */
  cache?: boolean | string;
}

/**
 * The dataset in `path`, read, filtered and cached as the options say. A DataError naming `path`
 * when it cannot be read, is malformed, or leaves fewer than 2 items (checked on the cached result
 * too, as a cache written before that check existed may hold such a dataset).
 */
export async function loadDataset(path: string, opts: LoadOptions = {}): Promise<Dataset> {
  const { cache = true, ...rest } = opts;
  const format = rest.format === undefined || rest.format === "auto"
    ? await detectFormat(path)
    : rest.format;
  const build = () => readAndFilter(path, format, rest);
  const dir = typeof cache === "string" ? cache : undefined;
  const ds = cache === false
    ? await build()
    : await loadOrBuild(path, { ...rest, format }, build, { dir });
  requireCatalog(ds, path, rest.kCore === undefined ? "as read," : kCoreStage(rest.kCore));
  return ds;
}

function kCoreStage(k: number | Partial<KCore>): string {
  const { users, items } = typeof k === "number" ? { users: k, items: k } : k;
  return `after k-core filtering (users ≥ ${users ?? 1} and items ≥ ${items ?? 1} interactions),`;
}

async function readAndFilter(path: string, format: DataFormat, opts: LoadOptions) {
  const ds = format === "sequences"
    ? await readSequences(path, { name: opts.name })
    : await readInteractions(path, opts);
  return opts.kCore === undefined ? ds : kCore(ds, opts.kCore);
}

/**
 * `.csv`/`.tsv` files are interaction logs; otherwise the first non-blank line decides: a header
 * (letters or commas) means an interaction log, plain integers mean a sequence file.
 */
export async function detectFormat(path: string): Promise<DataFormat> {
  if (/\.(csv|tsv)$/i.test(path)) return "interactions";
  const head = await readHead(path, 1 << 16);
  const first = head.split("\n").find((line) => line.trim() !== "") ?? "";
  return /[A-Za-z,]/.test(first) ? "interactions" : "sequences";
}
