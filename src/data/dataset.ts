/**
 * The preprocessed dataset every other part of the data layer produces or consumes, the error type
 * of bad input, and small shared helpers (growable typed buffers, seed derivation, counts).
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

/** Bad input data. The message always starts with `file:line: ` so it can be acted on directly. */
export class DataError extends Error {
  constructor(readonly file: string, readonly line: number, readonly what: string) {
    super(`${file}:${line}: ${what}`);
    this.name = "DataError";
  }
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
