/**
 * Binary cache of parsed event sequences, so a large transaction log is parsed once. Keyed like
 * the interaction cache (cache.ts: source path, size, mtime and the reader's options); written
 * to a temporary name and renamed.
 *
 * Layout (little-endian, every section padded to 8 bytes so typed-array views need no copy):
 *   "CUTRECEV" | u32 version | u32 header length | header JSON (names, ids, vocabularies)
 *   | offsets i32[clients + 1] | time f64[events] | one i32[events] per categorical field
 *   | one f32[events] per numeric field
 */
import { cacheFile, type CacheKey, cacheKey } from "./cache.ts";
import { fileError } from "./dataset.ts";
import { type EventSequences, readTransactions, type TransactionOptions } from "./transactions.ts";

const MAGIC = "CUTRECEV";
const VERSION = 1;

interface Header {
  key: CacheKey;
  name: string;
  clientIds: string[];
  events: number;
  categorical: { name: string; vocab: string[] }[];
  numeric: string[];
}

const pad8 = (n: number) => Math.ceil(n / 8) * 8;

function sections(s: EventSequences): ArrayBufferView[] {
  return [
    s.offsets,
    s.time,
    ...s.categorical.map((c) => c.values),
    ...s.numeric.map((n) => n.values),
  ];
}

function encodeTransactions(s: EventSequences, key: CacheKey): Uint8Array {
  const header: Header = {
    key,
    name: s.name,
    clientIds: s.clientIds,
    events: s.time.length,
    categorical: s.categorical.map((c) => ({ name: c.name, vocab: c.vocab })),
    numeric: s.numeric.map((n) => n.name),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const parts = sections(s);
  const start = pad8(16 + json.length);
  const total = parts.reduce((at, p) => at + pad8(p.byteLength), start);
  const out = new Uint8Array(total);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, json.length, true);
  out.set(json, 16);
  let at = start;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += pad8(p.byteLength);
  }
  return out;
}

/** The sequences in `bytes` when its key equals `key`, else null (stale or not a cache). */
function decodeTransactions(bytes: Uint8Array, key: CacheKey): EventSequences | null {
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  if (view.getUint32(8, true) !== VERSION) return null;
  const length = view.getUint32(12, true);
  const header: Header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + length)));
  if (JSON.stringify(header.key) !== JSON.stringify(key)) return null;
  const buf = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  let at = buf.byteOffset + pad8(16 + length);
  const take = <T>(C: new (b: ArrayBuffer, o: number, n: number) => T, n: number, size: number) => {
    const t = new C(buf.buffer as ArrayBuffer, at, n);
    at += pad8(n * size);
    return t;
  };
  const clients = header.clientIds.length;
  const offsets = take(Int32Array, clients + 1, 4);
  const time = take(Float64Array, header.events, 8);
  const categorical = header.categorical.map((c) => ({
    ...c,
    values: take(Int32Array, header.events, 4),
  }));
  const numeric = header.numeric.map((name) => ({
    name,
    values: take(Float32Array, header.events, 4),
  }));
  return { name: header.name, clientIds: header.clientIds, offsets, time, categorical, numeric };
}

/** readTransactions through the cache in `dir` (default runs/cache). */
export async function loadTransactions(
  path: string,
  opts: TransactionOptions = {},
  dir = "runs/cache",
): Promise<EventSequences> {
  const key = await cacheKey(path, { transactions: opts });
  const file = (await cacheFile(key, dir)).replace(/\.cds$/, ".cev");
  try {
    const hit = decodeTransactions(await Deno.readFile(file), key);
    if (hit) return hit;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof SyntaxError)) {
      throw fileError(file, "read the cache file", e);
    }
  }
  const s = await readTransactions(path, opts);
  try {
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${file}.tmp-${Deno.pid}-${crypto.randomUUID()}`;
    await Deno.writeFile(tmp, encodeTransactions(s, key));
    await Deno.rename(tmp, file);
  } catch (e) {
    throw fileError(file, "write the cache file", e);
  }
  return s;
}
