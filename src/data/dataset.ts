/**
 * The preprocessed dataset every other part of the data layer produces or consumes, the error type
 * of bad input with its helpers (excerpts of input, file-system failures, the catalogue-size
 * check), and small shared helpers (growable typed buffers, seed derivation, counts).
 */

/** Per-user item sequences with dense ids; item 0 is padding and never appears in `sequences`. */
export interface Dataset {
  name: string;
  /** Dense item ids run 1..items. */
  items: number;
  /** Equals `sequences.length`; user u is index u. */
  users: number;
  /** Per user, dense item ids in time order (ties keep their order in the source). */
  sequences: Int32Array[];
  /** Per user, parallel to `sequences`, when the source had times. */
  timestamps?: Float64Array[];
  /** Dense item id → original id; index 0 = "" (padding). */
  originalItemIds?: string[];
  /** Dense user index → original id. */
  originalUserIds?: string[];
}

/**
 * Bad input data. The message starts with `file:line: ` when the problem is on one line, with
 * `file: ` when it is about the whole file (a missing file, a catalogue too small), so it can be
 * acted on directly.
 */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly what: string,
    options?: ErrorOptions,
  ) {
    super(line === null ? `${file}: ${what}` : `${file}:${line}: ${what}`, options);
    this.name = "DataError";
  }
}

/** Longest piece of input an error message quotes. */
export const EXCERPT_CHARS = 40;

/**
 * `text` quoted for an error message: whole when short, else its first 40 characters, an ellipsis
 * and its full length, so a multi-megabyte field (a file without newlines read as one line) cannot
 * flood a terminal or a log. JSON quoting makes tabs, line ends and control characters visible.
 */
export function excerpt(text: string): string {
  if (text.length <= EXCERPT_CHARS) return JSON.stringify(text);
  // Cutting between the halves of a surrogate pair would quote half a character.
  const cut = /[\uD800-\uDBFF]/.test(text[EXCERPT_CHARS - 1]) ? EXCERPT_CHARS - 1 : EXCERPT_CHARS;
  return `${JSON.stringify(text.slice(0, cut) + "…")} (${text.length} characters)`;
}

/**
 * A failed file-system call on `path` as a DataError that names it. Deno's messages name the path
 * for some calls and not others (a read of a directory says only "Is a directory"), so the common
 * causes get a plain reason and the rest keep Deno's message; the original stays as `cause`.
 */
export function fileError(path: string, action: string, e: unknown): DataError {
  const reason = e instanceof Deno.errors.NotFound
    ? "no such file or directory"
    : e instanceof Deno.errors.IsADirectory
    ? "it is a directory, not a file"
    : e instanceof Deno.errors.NotADirectory
    ? "a folder on its path is a file"
    : e instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : e instanceof Error
    ? e.message
    : String(e);
  return new DataError(path, null, `cannot ${action}: ${reason}`, { cause: e });
}

/**
 * Fewest items a catalogue may have: with one item every ranking puts the target first, so
 * training "succeeds" with perfect metrics that mean nothing.
 */
export const MIN_CATALOG = 2;

/**
 * Refuses a catalogue under MIN_CATALOG items, naming `file`. `stage` says which step left the
 * catalogue this small (reading, a rating threshold, k-core filtering).
 */
export function requireCatalog(ds: Dataset, file: string, stage: string): void {
  if (ds.items >= MIN_CATALOG) return;
  const which = ds.items === 1 && ds.originalItemIds
    ? ` (item ${excerpt(ds.originalItemIds[1])})`
    : "";
  throw new DataError(
    file,
    null,
    `${stage} the catalogue has ${ds.items} item${ds.items === 1 ? "" : "s"}${which}; ` +
      `ranking needs at least ${MIN_CATALOG}`,
  );
}

/** Total number of interactions. */
export function interactionCount(ds: Pick<Dataset, "sequences">): number {
  let n = 0;
  for (const s of ds.sequences) n += s.length;
  return n;
}

/** Occurrences of each item id (index = dense id, index 0 stays 0) over the given sequences. */
export function itemCounts(sequences: readonly Int32Array[], items: number): Float64Array {
  const counts = new Float64Array(items + 1);
  for (const s of sequences) for (let i = 0; i < s.length; i++) counts[s[i]]++;
  return counts;
}

/**
 * A 32-bit seed from several integers (a murmur3-style finaliser over each part), so that e.g. the
 * shuffle of epoch 3 does not share a stream with epoch 4 or with another component's seed.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** An Int32Array that grows by doubling, for streaming input of unknown length. */
export class Int32Buffer {
  data = new Int32Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) this.grow();
    this.data[this.length++] = v;
  }

  /** A right-sized copy, so the growth slack is not kept alive. */
  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }

  private grow(): void {
    const next = new Int32Array(this.data.length * 2);
    next.set(this.data);
    this.data = next;
  }
}

/** A Float64Array that grows by doubling. */
export class Float64Buffer {
  data = new Float64Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) this.grow();
    this.data[this.length++] = v;
  }

  toArray(): Float64Array {
    return this.data.slice(0, this.length);
  }

  private grow(): void {
    const next = new Float64Array(this.data.length * 2);
    next.set(this.data);
    this.data = next;
  }
}
