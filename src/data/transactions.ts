/**
 * Event sequences (transaction logs): per client a time-ordered list of events with categorical
 * fields (merchant category), numeric fields (amount) and a time. The reader streams a CSV or TSV
 * file with a header (lines.ts), takes its columns from options or detects them from the header
 * and the first rows, remaps client ids and category values to dense indices (sorted original
 * order, numeric when all are integers), and sorts each client's events by time (stable).
 * Bad rows stop with a DataError `file:line: what` naming the field.
 */
import { DataError, excerpt, Float64Buffer } from "./dataset.ts";
import { forEachLine, readHead } from "./lines.ts";

export interface CategoricalField {
  name: string;
  /** Per event, the value's index in `vocab`. */
  values: Int32Array;
  vocab: string[];
}

export interface NumericField {
  name: string;
  values: Float32Array;
}

export interface EventSequences {
  name: string;
  /** Original id of each client, by dense index. */
  clientIds: string[];
  /** Client c's events are [offsets[c], offsets[c + 1]), in time order. */
  offsets: Int32Array;
  time: Float64Array;
  categorical: CategoricalField[];
  numeric: NumericField[];
}

export interface TransactionColumns {
  client: string;
  time: string;
  categorical: string[];
  numeric: string[];
}

export interface TransactionOptions extends Partial<TransactionColumns> {
  /** "auto" (default): tab when the header has one, comma otherwise. */
  delimiter?: "," | "\t" | "auto";
  /** Columns ignored by detection (a target column in the same file). */
  ignore?: string[];
  name?: string;
}

const CLIENT_NAMES = ["clientid", "client", "customerid", "userid", "user", "id"];
const TIME_NAMES = ["transdate", "time", "timestamp", "ts", "date", "eventtime", "day", "datetime"];
/** An integer column with at most this many distinct values in the sampled rows is categorical. */
const MAX_DETECTED_CATEGORIES = 1000;
const SAMPLE_BYTES = 1 << 16;

const norm = (s: string) => s.toLowerCase().replace(/[_\s-]/g, "");

/** Columns of `header` (split) from the options, or detected from the names and `sample` rows. */
export function detectColumns(
  header: string[],
  sample: string[][],
  opts: TransactionOptions,
  file: string,
): TransactionColumns {
  const has = (c: string) => {
    if (!header.includes(c)) {
      throw new DataError(file, 1, `no column ${JSON.stringify(c)} in the header`);
    }
    return c;
  };
  const pick = (names: string[], what: string) => {
    for (const n of names) {
      const c = header.find((h) => norm(h) === n);
      if (c) return c;
    }
    throw new DataError(file, 1, `no ${what} column found in the header (name it with a flag)`);
  };
  const client = opts.client ? has(opts.client) : pick(CLIENT_NAMES, "client id");
  const time = opts.time ? has(opts.time) : pick(TIME_NAMES, "time");
  const given = opts.categorical || opts.numeric;
  const rest = header.filter((c) => c !== client && c !== time && !(opts.ignore ?? []).includes(c));
  if (given) {
    const categorical = (opts.categorical ?? []).map(has);
    const numeric = (opts.numeric ?? []).map(has);
    return { client, time, categorical, numeric };
  }
  const categorical: string[] = [];
  const numeric: string[] = [];
  for (const c of rest) {
    const at = header.indexOf(c);
    const values = sample.map((r) => r[at]?.trim() ?? "");
    const numbers = values.every((v) => v !== "" && Number.isFinite(Number(v)));
    const integers = numbers && values.every((v) => Number.isInteger(Number(v)));
    if (numbers && !(integers && new Set(values).size <= MAX_DETECTED_CATEGORIES)) numeric.push(c);
    else categorical.push(c);
  }
  return { client, time, categorical, numeric };
}

/** Sorted distinct strings: numeric order when every one is an integer, else code-unit order. */
export function sortedVocab(values: Iterable<string>): string[] {
  const list = [...new Set(values)];
  const integers = list.every((v) => /^-?\d+$/.test(v));
  return integers ? list.sort((a, b) => Number(a) - Number(b)) : list.sort();
}

interface Rows {
  client: string[];
  time: Float64Buffer;
  categorical: string[][];
  numeric: Float64Buffer[];
}

function parseNumber(text: string, file: string, line: number, field: string): number {
  const v = Number(text);
  if (text === "" || !Number.isFinite(v)) {
    throw new DataError(
      file,
      line,
      `field ${JSON.stringify(field)}: ${excerpt(text)} is not a number`,
    );
  }
  return v;
}

/** Reads a transaction log into event sequences (see the module comment). */
export async function readTransactions(
  path: string,
  opts: TransactionOptions = {},
): Promise<EventSequences> {
  const head = await readHead(path, SAMPLE_BYTES);
  const firstLine = head.split(/\r?\n/)[0];
  const delimiter = opts.delimiter && opts.delimiter !== "auto"
    ? opts.delimiter
    : firstLine.includes("\t")
    ? "\t"
    : ",";
  const header = firstLine.split(delimiter).map((h) => h.trim());
  if (new Set(header).size !== header.length) {
    throw new DataError(path, 1, "the header names a column twice");
  }
  const sample = head.split(/\r?\n/).slice(1, -1).filter((l) => l.trim()).map((l) =>
    l.split(delimiter)
  );
  const cols = detectColumns(header, sample, opts, path);
  const at = (c: string) => header.indexOf(c);
  const rows: Rows = {
    client: [],
    time: new Float64Buffer(),
    categorical: cols.categorical.map(() => []),
    numeric: cols.numeric.map(() => new Float64Buffer()),
  };
  await forEachLine(path, (text, line) => {
    if (line === 1 || text.trim() === "") return;
    const f = text.split(delimiter);
    if (f.length !== header.length) {
      throw new DataError(path, line, `expected ${header.length} fields, got ${f.length}`);
    }
    const client = f[at(cols.client)].trim();
    if (client === "") {
      throw new DataError(path, line, `field ${JSON.stringify(cols.client)} is empty`);
    }
    rows.client.push(client);
    rows.time.push(parseNumber(f[at(cols.time)].trim(), path, line, cols.time));
    cols.categorical.forEach((c, k) => rows.categorical[k].push(f[at(c)].trim()));
    cols.numeric.forEach((c, k) =>
      rows.numeric[k].push(parseNumber(f[at(c)].trim(), path, line, c))
    );
  });
  if (rows.client.length === 0) throw new DataError(path, null, "no events after the header");
  const name = opts.name ?? path.split("/").pop()!.replace(/\.[^.]*$/, "");
  return buildSequences(name, rows, cols);
}

function buildSequences(name: string, rows: Rows, cols: TransactionColumns): EventSequences {
  const clientIds = sortedVocab(rows.client);
  const clientIndex = new Map(clientIds.map((c, i) => [c, i]));
  const n = rows.client.length;
  const clientOf = Int32Array.from(rows.client, (c) => clientIndex.get(c)!);
  const time = rows.time.toArray();
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) =>
    clientOf[a] - clientOf[b] || time[a] - time[b] || a - b
  );
  const offsets = new Int32Array(clientIds.length + 1);
  for (let i = 0; i < n; i++) offsets[clientOf[i] + 1]++;
  for (let c = 0; c < clientIds.length; c++) offsets[c + 1] += offsets[c];
  const categorical = cols.categorical.map((c, k) => {
    const vocab = sortedVocab(rows.categorical[k]);
    const index = new Map(vocab.map((v, i) => [v, i]));
    const values = Int32Array.from(order, (i) => index.get(rows.categorical[k][i])!);
    return { name: c, values, vocab };
  });
  const numeric = cols.numeric.map((c, k) => {
    const src = rows.numeric[k].toArray();
    return { name: c, values: Float32Array.from(order, (i) => src[i]) };
  });
  return {
    name,
    clientIds,
    offsets,
    time: Float64Array.from(order, (i) => time[i]),
    categorical,
    numeric,
  };
}

/** Client targets from a CSV/TSV with a header: client column and target column (detected). */
export async function readTargets(
  path: string,
  opts: { client?: string; target?: string } = {},
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let header: string[] = [];
  let delimiter = ",";
  let ci = -1;
  let ti = -1;
  await forEachLine(path, (text, line) => {
    if (line === 1) {
      delimiter = text.includes("\t") ? "\t" : ",";
      header = text.split(delimiter).map((h) => h.trim());
      ci = opts.client
        ? header.indexOf(opts.client)
        : header.findIndex((h) => CLIENT_NAMES.includes(norm(h)));
      ti = opts.target ? header.indexOf(opts.target) : header.findIndex((_, i) => i !== ci);
      if (ci < 0 || ti < 0) {
        throw new DataError(path, 1, "cannot find the client and target columns");
      }
      return;
    }
    if (text.trim() === "") return;
    const f = text.split(delimiter);
    if (f.length !== header.length) {
      throw new DataError(path, line, `expected ${header.length} fields, got ${f.length}`);
    }
    const target = f[ti].trim();
    if (target === "") {
      throw new DataError(path, line, `field ${JSON.stringify(header[ti])} is empty`);
    }
    out.set(f[ci].trim(), target);
  });
  return out;
}

/** Class labels of a run's clients: dense class indices (−1 where unknown) and their names. */
export interface ClientLabels {
  classes: string[];
  labels: Int32Array;
}

export function labelClients(s: EventSequences, targets: Map<string, string>): ClientLabels {
  const classes = sortedVocab(targets.values());
  const index = new Map(classes.map((c, i) => [c, i]));
  const labels = Int32Array.from(s.clientIds, (id) => {
    const t = targets.get(id);
    return t === undefined ? -1 : index.get(t)!;
  });
  return { classes, labels };
}
