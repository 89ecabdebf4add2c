/**
 * Readers for interaction logs (CSV/TSV with a header) and sequence files (`user item item …`, one
 * line per user, the 5-core Amazon/Yelp format). Both stream the file (see lines.ts), collect rows
 * into growable typed arrays, then build a Dataset:
 *
 * - Dense ids: items are numbered 1..n in ascending order of their original id (numeric order for
 *   integer ids, code-unit order for string ids); users are indexed 0..u-1 the same way. This is
 *   deterministic, independent of file order, and keeps already-dense files (Beauty.txt: items
 *   1..12101) unchanged.
 * - Time order: each user's interactions are sorted by timestamp; equal timestamps keep file
 *   order (stable). Sequence files are already in time order and are kept as written.
 * - Bad input stops with a DataError `file:line: what` naming the column and quoting at most an
 *   excerpt of the field. CRLF line ends, a BOM, blank lines and spaces around fields are
 *   accepted; a header naming a column twice, and a catalogue of fewer than 2 items, are not.
 */
import {
  DataError,
  type Dataset,
  excerpt,
  EXCERPT_CHARS,
  Float64Buffer,
  Int32Buffer,
  requireCatalog,
} from "./dataset.ts";
import { passesRating } from "./filter.ts";
import { forEachLine } from "./lines.ts";

/** Options of `readInteractions`. Column names are matched exactly, then case/`_`-insensitively. */
export interface InteractionOptions {
  /** "auto" (default) picks tab when the header contains one, comma otherwise. */
  delimiter?: "," | "\t" | "auto";
  /** Default: the first of userId, user_id, user, uid, … present in the header. */
  userCol?: string;
  /** Default: the first of itemId, item_id, item, movieId, productId, asin, … */
  itemCol?: string;
  /** Default: timestamp, time, ts, datetime, date, … (required); null = no times, file order. */
  timeCol?: string | null;
  /** Default: rating, score or stars when present. */
  ratingCol?: string;
  /** Keep rows with rating ≥ minRating (needs a rating column). */
  minRating?: number;
  /** Validate user/item ids as integers in [0, 2^31) (default true); false = opaque strings. */
  integerIds?: boolean;
  /** Dataset name; default: the file name without extension. */
  name?: string;
}

/** Largest id accepted: ids must fit a signed 32-bit integer. */
const MAX_ID = 2 ** 31 - 1;

/** Header names tried, in order, when a column is not named explicitly (normalised form). */
const CANDIDATES = {
  user: ["userid", "user", "uid", "visitorid", "customerid", "clientid"],
  item: ["itemid", "item", "movieid", "iid", "productid", "asin", "businessid", "trackid"],
  time: ["timestamp", "time", "ts", "datetime", "date", "unixtime", "eventtime"],
  rating: ["rating", "score", "stars"],
};

/** Where the needed columns are in each row. */
interface Layout {
  delimiter: string;
  names: string[];
  /** Column names as errors show them: the name, or an excerpt of a long one. */
  labels: string[];
  user: number;
  item: number;
  /** -1 when there is no time column. */
  time: number;
  /** -1 when there is no rating column. */
  rating: number;
}

/** An original id: its value for integer ids (cheap to hash), else the string as written. */
type Key = number | string;

/** Original id → provisional id (order of first appearance in the file). */
class IdTable {
  readonly keys: Key[] = [];
  private readonly map = new Map<Key, number>();

  id(key: Key): number {
    let id = this.map.get(key);
    if (id === undefined) {
      id = this.keys.length;
      this.map.set(key, id);
      this.keys.push(key);
    }
    return id;
  }
}

/** Rows collected while streaming, with provisional ids. */
class Rows {
  readonly users = new Int32Buffer();
  readonly items = new Int32Buffer();
  readonly userIds = new IdTable();
  readonly itemIds = new IdTable();
  constructor(readonly times: Float64Buffer | null) {}

  add(user: Key, item: Key, time: number): void {
    this.users.push(this.userIds.id(user));
    this.items.push(this.itemIds.id(item));
    this.times?.push(time);
  }
}

/** Reads a CSV/TSV interaction log with a header into a Dataset (see the module comment). */
export async function readInteractions(
  path: string,
  opts: InteractionOptions = {},
): Promise<Dataset> {
  const integerIds = opts.integerIds ?? true;
  let layout: Layout | null = null;
  let rows: Rows | null = null;
  let headerLine = 1;
  let dataLines = 0;
  let lastLine = 0;
  await forEachLine(path, (raw, lineNo) => {
    lastLine = lineNo;
    const text = raw.trim();
    if (text === "") return;
    if (layout === null) {
      headerLine = lineNo;
      layout = parseHeader(path, lineNo, text, opts);
      rows = new Rows(layout.time >= 0 ? new Float64Buffer() : null);
      return;
    }
    dataLines++;
    parseRow(path, lineNo, text, layout, opts, integerIds, rows!);
  });
  if (layout === null) throw new DataError(path, 1, "empty file");
  if (dataLines === 0) {
    throw new DataError(path, headerLine, "header only: no interaction rows");
  }
  if (rows!.users.length === 0) {
    throw new DataError(path, lastLine, `no rows have rating >= ${opts.minRating}`);
  }
  const ds = assemble(opts.name ?? baseName(path), rows!);
  const stage = opts.minRating === undefined
    ? "as read,"
    : `after the rating threshold (rating ≥ ${opts.minRating}),`;
  requireCatalog(ds, path, stage);
  return ds;
}

/** Reads `user item item …` lines (whitespace separated integers, items in time order). */
export async function readSequences(path: string, opts: { name?: string } = {}): Promise<Dataset> {
  const rows = new Rows(null);
  await forEachLine(path, (raw, lineNo) => {
    const text = raw.trim();
    if (text === "") return;
    const tokens = text.split(/\s+/);
    const user = parseId(path, lineNo, "user id", tokens[0], true);
    if (tokens.length < 2) throw new DataError(path, lineNo, `user ${user} has no items`);
    for (let j = 1; j < tokens.length; j++) {
      rows.add(user, parseId(path, lineNo, `item id (field ${j + 1})`, tokens[j], true), 0);
    }
  });
  if (rows.users.length === 0) throw new DataError(path, 1, "empty file");
  const ds = assemble(opts.name ?? baseName(path), rows);
  requireCatalog(ds, path, "as read,");
  return ds;
}

/** Column positions from the header line (line `lineNo`: blank lines may precede it). */
function parseHeader(path: string, lineNo: number, text: string, opts: InteractionOptions): Layout {
  const delimiter = opts.delimiter && opts.delimiter !== "auto"
    ? opts.delimiter
    : text.includes("\t")
    ? "\t"
    : ",";
  const names = splitFields(path, lineNo, text, delimiter);
  refuseDuplicates(path, lineNo, names);
  const find = (role: keyof typeof CANDIDATES, explicit: string | undefined, option: string) =>
    findColumn(path, lineNo, names, role, explicit, option);
  const user = find("user", opts.userCol, "userCol");
  const item = find("item", opts.itemCol, "itemCol");
  const time = opts.timeCol === null ? -1 : find("time", opts.timeCol, "timeCol");
  const rating = opts.ratingCol !== undefined || opts.minRating !== undefined
    ? find("rating", opts.ratingCol, "ratingCol")
    : detect(path, lineNo, names, CANDIDATES.rating);
  const roles = Object.entries({ user, item, time, rating }).filter(([, c]) => c >= 0);
  roles.forEach(([role, c], i) => {
    const other = roles.slice(i + 1).find(([, d]) => d === c);
    if (other) {
      const what = `column ${excerpt(names[c])} is both the ${role} and the ${other[0]} column`;
      throw new DataError(path, lineNo, what);
    }
  });
  const labels = names.map((name) => (name.length > EXCERPT_CHARS ? excerpt(name) : name));
  return { delimiter, names, labels, user, item, time, rating };
}

/**
 * Two columns of one name would leave which of them a role reads to column order, silently (the
 * first wins), so a header that repeats a name is refused.
 */
function refuseDuplicates(path: string, lineNo: number, names: string[]): void {
  const first = new Map<string, number>();
  names.forEach((name, i) => {
    const before = first.get(name);
    if (before !== undefined) {
      const where = `columns ${before + 1} and ${i + 1}`;
      throw new DataError(path, lineNo, `duplicate column name ${excerpt(name)} (${where})`);
    }
    first.set(name, i);
  });
}

/** Index of a required column, explicit or detected; a DataError on the header line when absent. */
function findColumn(
  path: string,
  lineNo: number,
  names: string[],
  role: keyof typeof CANDIDATES,
  explicit: string | undefined,
  option: string,
): number {
  const i = explicit === undefined
    ? detect(path, lineNo, names, CANDIDATES[role])
    : lookup(path, lineNo, names, explicit);
  if (i >= 0) return i;
  const wanted = explicit === undefined
    ? `${role} column`
    : `column ${excerpt(explicit)} (${role})`;
  const orNull = role === "time" ? " (or null: no times, file order)" : "";
  const hint = explicit === undefined ? `; name it with ${option}${orNull}` : "";
  throw new DataError(
    path,
    lineNo,
    `header has no ${wanted} (columns: ${columnList(names)})${hint}; a header line is required`,
  );
}

/** Most columns an error lists: a binary file read as a header can have thousands of "names". */
const LISTED_COLUMNS = 12;

function columnList(names: string[]): string {
  const shown = names.slice(0, LISTED_COLUMNS).map(excerpt).join(", ");
  return names.length > LISTED_COLUMNS ? `${shown}, … (${names.length} in all)` : shown;
}

/** An exact name wins; otherwise the one column equal after `normalise`. */
function lookup(path: string, lineNo: number, names: string[], wanted: string): number {
  const exact = names.indexOf(wanted);
  return exact >= 0 ? exact : normalisedMatch(path, lineNo, names, normalise(wanted));
}

function detect(path: string, lineNo: number, names: string[], candidates: string[]): number {
  for (const c of candidates) {
    const i = normalisedMatch(path, lineNo, names, c);
    if (i >= 0) return i;
  }
  return -1;
}

/**
 * The column whose normalised name is `key`, -1 when none; two ("userId" and "user_id") would make
 * the choice depend on column order, so they are refused with both names.
 */
function normalisedMatch(path: string, lineNo: number, names: string[], key: string): number {
  const hits = names.flatMap((name, i) => (normalise(name) === key ? [i] : []));
  if (hits.length > 1) {
    const both = hits.map((i) => `${excerpt(names[i])} (column ${i + 1})`).join(" and ");
    throw new DataError(path, lineNo, `columns ${both} both match ${excerpt(key)}; name one`);
  }
  return hits.length === 1 ? hits[0] : -1;
}

/** "User_ID" and "userId" name the same column. */
function normalise(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** Validates one data line and adds it to `rows` unless the rating threshold rejects it. */
function parseRow(
  path: string,
  lineNo: number,
  text: string,
  layout: Layout,
  opts: InteractionOptions,
  integerIds: boolean,
  rows: Rows,
): void {
  const f = splitFields(path, lineNo, text, layout.delimiter);
  const n = layout.names.length;
  if (f.length < n) {
    const missing = excerpt(layout.names[f.length]);
    throw new DataError(
      path,
      lineNo,
      `missing column ${missing} (${f.length} fields, header has ${n})`,
    );
  }
  if (f.length > n) throw new DataError(path, lineNo, `${f.length} fields, header has ${n}`);
  const name = (c: number) => layout.labels[c];
  const user = parseId(path, lineNo, name(layout.user), f[layout.user], integerIds);
  const item = parseId(path, lineNo, name(layout.item), f[layout.item], integerIds);
  const time = layout.time < 0 ? 0 : parseTime(path, lineNo, name(layout.time), f[layout.time]);
  if (layout.rating >= 0) {
    const rating = parseNumber(path, lineNo, name(layout.rating), f[layout.rating]);
    if (!passesRating(rating, opts.minRating)) return;
  }
  rows.add(user, item, time);
}

/** Fields of one line, each trimmed; double-quoted fields ("" escapes a quote) are unquoted. */
function splitFields(path: string, lineNo: number, text: string, delimiter: string): string[] {
  const fields = text.includes('"')
    ? splitQuoted(path, lineNo, text, delimiter)
    : text.split(delimiter);
  for (let i = 0; i < fields.length; i++) fields[i] = fields[i].trim();
  return fields;
}

function splitQuoted(path: string, lineNo: number, text: string, delimiter: string): string[] {
  const out: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') field += text[++i];
      else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) {
      out.push(field);
      field = "";
    } else field += c;
  }
  if (quoted) {
    throw new DataError(path, lineNo, `unterminated quoted field (field ${out.length + 1})`);
  }
  out.push(field);
  return out;
}

/**
 * The key of an id. Integer ids must be decimal digits below 2^31 and are keyed by value ("007"
 * and "7" are the same id); string ids only need to be non-empty.
 */
function parseId(
  path: string,
  lineNo: number,
  col: string,
  field: string,
  integer: boolean,
): Key {
  if (field === "") throw new DataError(path, lineNo, `empty ${col}`);
  if (!integer) return field;
  // A digit loop instead of a regex + Number(): this runs twice per line of a 100M-line log.
  let v = 0;
  for (let i = 0; i < field.length; i++) {
    const d = field.charCodeAt(i) - 48;
    if (d < 0 || d > 9) {
      throw new DataError(path, lineNo, `${col} ${excerpt(field)} is not a non-negative integer`);
    }
    v = v * 10 + d;
  }
  if (v > MAX_ID) throw new DataError(path, lineNo, `${col} ${excerpt(field)} is beyond 2^31 - 1`);
  return v;
}

/** Seconds: a number as written, or an ISO-8601 date converted to Unix seconds. */
function parseTime(path: string, lineNo: number, col: string, field: string): number {
  if (field === "") throw new DataError(path, lineNo, `empty ${col}`);
  const v = Number(field);
  if (Number.isFinite(v)) return v;
  if (/^\d{4}-\d{2}-\d{2}/.test(field)) {
    const ms = Date.parse(field);
    if (!Number.isNaN(ms)) return ms / 1000;
  }
  throw new DataError(path, lineNo, `${col} ${excerpt(field)} is not a number or an ISO date`);
}

function parseNumber(path: string, lineNo: number, col: string, field: string): number {
  const v = field === "" ? NaN : Number(field);
  if (!Number.isFinite(v)) {
    throw new DataError(path, lineNo, `${col} ${excerpt(field)} is not a number`);
  }
  return v;
}

/** Builds the Dataset: dense ids by sorted original id, per-user time order, stable ties. */
function assemble(name: string, rows: Rows): Dataset {
  const userRank = ranks(rows.userIds.keys);
  const itemRank = ranks(rows.itemIds.keys);
  const users = rows.users.toArray();
  const items = rows.items.toArray();
  const times = rows.times?.toArray() ?? null;
  const { order, start } = groupByUser(users, userRank);
  const sequences: Int32Array[] = [];
  const timestamps: Float64Array[] = [];
  for (let u = 0; u < userRank.length; u++) {
    const seg = order.subarray(start[u], start[u + 1]);
    if (times) sortByTime(seg, times);
    sequences.push(gather(seg, (r) => itemRank[items[r]] + 1, new Int32Array(seg.length)));
    if (times) timestamps.push(gather(seg, (r) => times[r], new Float64Array(seg.length)));
  }
  const ds: Dataset = {
    name,
    items: itemRank.length,
    users: userRank.length,
    sequences,
    originalItemIds: ["", ...inverse(itemRank).map((p) => String(rows.itemIds.keys[p]))],
    originalUserIds: inverse(userRank).map((p) => String(rows.userIds.keys[p])),
  };
  if (times) ds.timestamps = timestamps;
  return ds;
}

function gather<T extends Int32Array | Float64Array>(
  rows: Int32Array,
  value: (row: number) => number,
  out: T,
): T {
  for (let i = 0; i < rows.length; i++) out[i] = value(rows[i]);
  return out;
}

/** provisional id → rank of its key in ascending order (numeric for integer ids). */
function ranks(keys: Key[]): Int32Array {
  const order = Array.from(keys.keys());
  if (typeof keys[0] === "number") {
    const values = keys as number[];
    order.sort((a, b) => values[a] - values[b]);
  } else order.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : 0));
  const rank = new Int32Array(keys.length);
  order.forEach((p, r) => (rank[p] = r));
  return rank;
}

function inverse(rank: Int32Array): number[] {
  const out = new Array<number>(rank.length);
  rank.forEach((r, p) => (out[r] = p));
  return out;
}

/** Row indices grouped by user rank (counting sort: rows of one user stay in file order). */
function groupByUser(users: Int32Array, userRank: Int32Array) {
  const start = new Int32Array(userRank.length + 1);
  for (let r = 0; r < users.length; r++) start[userRank[users[r]] + 1]++;
  for (let u = 0; u < userRank.length; u++) start[u + 1] += start[u];
  const fill = start.slice(0, userRank.length);
  const order = new Int32Array(users.length);
  for (let r = 0; r < users.length; r++) order[fill[userRank[users[r]]]++] = r;
  return { order, start };
}

/** Sorts one user's row indices by time; equal times keep file order (row index breaks ties). */
function sortByTime(seg: Int32Array, times: Float64Array): void {
  let sorted = true;
  for (let i = 1; i < seg.length && sorted; i++) sorted = times[seg[i - 1]] <= times[seg[i]];
  if (!sorted) seg.sort((a, b) => times[a] - times[b] || a - b);
}

function baseName(path: string): string {
  const file = path.split(/[\\/]/).pop() ?? path;
  const dot = file.lastIndexOf(".");
  return dot > 0 ? file.slice(0, dot) : file;
}
