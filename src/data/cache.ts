/**
 * Binary cache of a preprocessed Dataset, so a large log is parsed once.
 *
 * Layout (little-endian, every section 8-byte aligned so typed-array views need no copy):
 *   "CUTRECDS" | u32 format version | u32 header length | header JSON
 *   | offsets f64[users + 1] | items i32[total] | timestamps f64[total] (optional)
 *   | original item ids (UTF-8, "\n"-joined) | original user ids (same)
 * The header holds the key (format version, absolute source path, its size and mtime, and the
 * preprocessing options); any difference means the cache is stale and is rebuilt. Files are
 * written to a temporary name and renamed, so a reader never sees a half-written cache.
 */
import { type Dataset, fileError } from "./dataset.ts";

const MAGIC = "CUTRECDS";
export const CACHE_FORMAT_VERSION = 1;
const PREFIX_BYTES = 16;
const WRITE_CHUNK = 1 << 22;

/** What a cache file must match to be used. */
export interface CacheKey {
  version: number;
  source: string;
  size: number;
  mtimeMs: number;
  options: unknown;
}

interface Header {
  key: CacheKey;
  name: string;
  items: number;
  users: number;
  total: number;
  timestamps: boolean;
  itemIdBytes: number;
  userIdBytes: number;
}

/** Where the cache lives; default `runs/cache` under the working directory (ignored by git). */
export interface CacheOptions {
  dir?: string;
}

/**
 * The cached dataset for (`path`, `opts`) when the cache is fresh; otherwise `build()`, written to
 * the cache before it is returned. `opts` must be JSON-serialisable (it is part of the key).
 */
export async function loadOrBuild(
  path: string,
  opts: unknown,
  build: () => Promise<Dataset>,
  cache: CacheOptions = {},
): Promise<Dataset> {
  const key = await cacheKey(path, opts);
  const file = await cacheFile(key, cache.dir ?? "runs/cache");
  const hit = await readCache(file, key);
  if (hit) return hit;
  const ds = await build();
  await writeCache(file, key, ds);
  return ds;
}

/** The key of `path` as it is now on disk. */
export async function cacheKey(path: string, opts: unknown): Promise<CacheKey> {
  let source: string;
  let info: Deno.FileInfo;
  try {
    source = await Deno.realPath(path);
    info = await Deno.stat(source);
  } catch (e) {
    throw fileError(path, "read", e);
  }
  return {
    version: CACHE_FORMAT_VERSION,
    source,
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? 0,
    options: canonical(opts),
  };
}

/** Cache file name: source name plus a hash of (source, options); size/mtime are checked inside. */
export async function cacheFile(key: CacheKey, dir: string): Promise<string> {
  const text = JSON.stringify([key.source, key.options]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const hex = Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const base = key.source.split(/[\\/]/).pop() ?? "dataset";
  return `${dir}/${base}-${hex}.cds`;
}

/**
 * The dataset in `file` when it exists and its key equals `key`; null otherwise. A cache file that
 * exists but cannot be read (a directory, no permission) is a DataError naming it: rebuilding would
 * fail to replace it.
 */
export async function readCache(file: string, key: CacheKey): Promise<Dataset | null> {
  try {
    const found = await readHeader(file);
    if (!found || !sameKey(found.header.key, key)) return null;
    let bytes = await Deno.readFile(file);
    // Typed-array views need an 8-byte aligned start; copy in the unlikely case it is not.
    if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice();
    return decode(bytes, found.header, found.dataStart);
  } catch (e) {
    // A missing file is a miss; a damaged header is treated as stale and rebuilt over.
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
    throw fileError(file, "read the cache file", e);
  }
}

/**
 * Writes `ds` atomically (temporary file in the same directory, then rename). A failure (a cache
 * directory that cannot be created, a full disk) is a DataError naming `file`.
 */
export async function writeCache(file: string, key: CacheKey, ds: Dataset): Promise<void> {
  try {
    await writeAtomically(file, key, ds);
  } catch (e) {
    throw fileError(file, "write the cache file", e);
  }
}

async function writeAtomically(file: string, key: CacheKey, ds: Dataset): Promise<void> {
  const dir = file.slice(0, Math.max(0, file.lastIndexOf("/"))) || ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${file}.tmp-${Deno.pid}-${crypto.randomUUID()}`;
  const out = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await writeSections(new ChunkWriter(out), key, ds);
    await out.syncData();
  } catch (e) {
    out.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  out.close();
  await Deno.rename(tmp, file);
}

async function writeSections(w: ChunkWriter, key: CacheKey, ds: Dataset): Promise<void> {
  const enc = new TextEncoder();
  const itemIds = enc.encode((ds.originalItemIds ?? []).join("\n"));
  const userIds = enc.encode((ds.originalUserIds ?? []).join("\n"));
  const offsets = new Float64Array(ds.users + 1);
  ds.sequences.forEach((s, u) => (offsets[u + 1] = offsets[u] + s.length));
  const header: Header = {
    key,
    name: ds.name,
    items: ds.items,
    users: ds.users,
    total: offsets[ds.users],
    timestamps: ds.timestamps !== undefined,
    itemIdBytes: ds.originalItemIds ? itemIds.length : -1,
    userIdBytes: ds.originalUserIds ? userIds.length : -1,
  };
  const json = enc.encode(JSON.stringify(header));
  const prefix = new Uint8Array(PREFIX_BYTES);
  prefix.set(enc.encode(MAGIC));
  new DataView(prefix.buffer).setUint32(8, CACHE_FORMAT_VERSION, true);
  new DataView(prefix.buffer).setUint32(12, json.length, true);
  await w.write(prefix);
  await w.write(json);
  await w.align();
  await w.write(bytesOf(offsets));
  for (const s of ds.sequences) await w.write(bytesOf(s));
  await w.align();
  for (const t of ds.timestamps ?? []) await w.write(bytesOf(t));
  await w.write(itemIds);
  await w.write(userIds);
  await w.flush();
}

/** The header and where the data starts, or null when the file is not a cache of this version. */
async function readHeader(file: string): Promise<{ header: Header; dataStart: number } | null> {
  const f = await Deno.open(file, { read: true });
  try {
    const prefix = await readExactly(f, PREFIX_BYTES);
    if (!prefix || new TextDecoder().decode(prefix.subarray(0, 8)) !== MAGIC) return null;
    const view = new DataView(prefix.buffer, prefix.byteOffset);
    if (view.getUint32(8, true) !== CACHE_FORMAT_VERSION) return null;
    const length = view.getUint32(12, true);
    const json = await readExactly(f, length);
    if (!json) return null;
    return {
      header: JSON.parse(new TextDecoder().decode(json)),
      dataStart: pad8(PREFIX_BYTES + length),
    };
  } finally {
    f.close();
  }
}

/** Views into `bytes` (no copy of the bulk data); null when the file is shorter than declared. */
function decode(bytes: Uint8Array, h: Header, dataStart: number): Dataset | null {
  let at = dataStart;
  const take = (n: number) => {
    const start = at;
    at += n;
    return start;
  };
  const offsetsAt = take(8 * (h.users + 1));
  const itemsAt = take(4 * h.total);
  at = pad8(at);
  const timesAt = h.timestamps ? take(8 * h.total) : -1;
  const itemIdsAt = take(Math.max(0, h.itemIdBytes));
  const userIdsAt = take(Math.max(0, h.userIdBytes));
  if (at !== bytes.length) return null;
  const buf = bytes.buffer;
  const offsets = new Float64Array(buf, bytes.byteOffset + offsetsAt, h.users + 1);
  const flatItems = new Int32Array(buf, bytes.byteOffset + itemsAt, h.total);
  const flatTimes = timesAt < 0 ? null : new Float64Array(buf, bytes.byteOffset + timesAt, h.total);
  const ds: Dataset = { name: h.name, items: h.items, users: h.users, sequences: [] };
  for (let u = 0; u < h.users; u++) {
    ds.sequences.push(flatItems.subarray(offsets[u], offsets[u + 1]));
  }
  if (flatTimes) {
    ds.timestamps = ds.sequences.map((_, u) => flatTimes.subarray(offsets[u], offsets[u + 1]));
  }
  const text = (start: number, n: number) =>
    new TextDecoder().decode(bytes.subarray(start, start + n)).split("\n");
  if (h.itemIdBytes >= 0) ds.originalItemIds = text(itemIdsAt, h.itemIdBytes);
  if (h.userIdBytes >= 0) ds.originalUserIds = h.users > 0 ? text(userIdsAt, h.userIdBytes) : [];
  return ds;
}

/** Buffers small writes into large ones and tracks the position for alignment. */
class ChunkWriter {
  private readonly buf = new Uint8Array(WRITE_CHUNK);
  private used = 0;
  position = 0;
  constructor(private readonly file: Deno.FsFile) {}

  async write(bytes: Uint8Array): Promise<void> {
    this.position += bytes.length;
    if (this.used + bytes.length > this.buf.length) await this.flush();
    if (bytes.length > this.buf.length) return await writeAll(this.file, bytes);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  /** Zero padding up to the next multiple of 8. */
  async align(): Promise<void> {
    const pad = pad8(this.position) - this.position;
    if (pad > 0) await this.write(new Uint8Array(pad));
  }

  async flush(): Promise<void> {
    await writeAll(this.file, this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

async function readExactly(file: Deno.FsFile, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  for (let done = 0; done < n;) {
    const got = await file.read(out.subarray(done));
    if (got === null) return null;
    done += got;
  }
  return out;
}

function bytesOf(a: Int32Array | Float64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function pad8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function sameKey(a: CacheKey, b: CacheKey): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Options with object keys sorted, so {a, b} and {b, a} give the same key. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value ?? null;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return Object.fromEntries(entries.map(([k, v]) => [k, canonical(v)]));
}
