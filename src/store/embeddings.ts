/**
 * A run's embeddings on disk, beside its other files: `embeddings-<kind>.f32` holds the vectors
 * (little-endian float32, row-major, count × dim) and `embeddings-<kind>.json` what they mean
 * (kind, count, dim, the client or item id of each row, and an optional colour per row such as a
 * target class or an item's popularity). Trainers write them once; the dashboard reads them.
 *
 * Both files are written under temporary names and renamed into place, the vectors first and the
 * description last, so a reader never sees half a file; a reader that catches the two files from
 * different writes sees sizes that disagree and gets an error naming the file.
 */

export type EmbeddingKind = "clients" | "items";

export const EMBEDDING_KINDS: readonly EmbeddingKind[] = ["clients", "items"];

/** A value per row that the map is coloured by: numbers for a gradient, strings for classes. */
export interface EmbeddingColour {
  name: string;
  values: (number | string)[];
}

export interface EmbeddingsInput {
  kind: EmbeddingKind;
  ids: string[];
  dim: number;
  /** count × dim, row-major. */
  vectors: Float32Array;
  colour?: EmbeddingColour;
}

export interface Embeddings extends EmbeddingsInput {
  count: number;
}

/** What `embeddings-<kind>.json` holds. */
interface EmbeddingsHeader {
  kind: EmbeddingKind;
  count: number;
  dim: number;
  ids: string[];
  colour: EmbeddingColour | null;
}

export function embeddingsVectorsPath(dir: string, kind: EmbeddingKind): string {
  return `${dir}/embeddings-${kind}.f32`;
}

export function embeddingsHeaderPath(dir: string, kind: EmbeddingKind): string {
  return `${dir}/embeddings-${kind}.json`;
}

/** Writes a run's embeddings of one kind into `dir` (created if missing), replacing any before. */
export function writeEmbeddings(dir: string, e: EmbeddingsInput): void {
  const count = e.ids.length;
  checkInput(e, count);
  const header: EmbeddingsHeader = {
    kind: e.kind,
    count,
    dim: e.dim,
    ids: e.ids,
    colour: e.colour ?? null,
  };
  Deno.mkdirSync(dir, { recursive: true });
  writeAtomically(embeddingsVectorsPath(dir, e.kind), littleEndianBytes(e.vectors));
  writeAtomically(
    embeddingsHeaderPath(dir, e.kind),
    new TextEncoder().encode(JSON.stringify(header) + "\n"),
  );
}

/** A run's embeddings of one kind, or null when `dir` holds none of that kind. */
export function readEmbeddings(dir: string, kind: EmbeddingKind): Embeddings | null {
  const headerPath = embeddingsHeaderPath(dir, kind);
  let text: string;
  try {
    text = Deno.readTextFileSync(headerPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  const header = parseHeader(headerPath, text, kind);
  const vectorsPath = embeddingsVectorsPath(dir, kind);
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(vectorsPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`${vectorsPath}: missing, though ${headerPath} describes it`);
    }
    throw err;
  }
  const expected = header.count * header.dim * 4;
  if (bytes.byteLength !== expected) {
    throw new Error(
      `${vectorsPath}: ${bytes.byteLength} bytes, but ${headerPath} says count ${header.count} × ` +
        `dim ${header.dim} float32 = ${expected} bytes`,
    );
  }
  const out: Embeddings = {
    kind,
    count: header.count,
    dim: header.dim,
    ids: header.ids,
    vectors: fromLittleEndian(bytes),
  };
  if (header.colour) out.colour = header.colour;
  return out;
}

/** Which kinds of embeddings `dir` holds (their description file exists). */
export function embeddingKindsIn(dir: string): EmbeddingKind[] {
  return EMBEDDING_KINDS.filter((kind) => {
    try {
      return Deno.statSync(embeddingsHeaderPath(dir, kind)).isFile;
    } catch {
      return false;
    }
  });
}

function checkInput(e: EmbeddingsInput, count: number): void {
  const what = `writeEmbeddings(${e.kind})`;
  if (!EMBEDDING_KINDS.includes(e.kind)) throw new Error(`${what}: kind must be clients or items`);
  if (!Number.isInteger(e.dim) || e.dim < 1) {
    throw new Error(`${what}: dim must be a positive integer, got ${e.dim}`);
  }
  if (e.vectors.length !== count * e.dim) {
    throw new Error(
      `${what}: vectors has ${e.vectors.length} values, expected ${count} ids × dim ${e.dim}`,
    );
  }
  if (e.colour) checkColour(what, e.colour, count);
}

function checkColour(what: string, colour: EmbeddingColour, count: number): void {
  if (colour.values.length !== count) {
    throw new Error(
      `${what}: colour "${colour.name}" has ${colour.values.length} values for ${count} ids`,
    );
  }
  const bad = colour.values.findIndex((v) =>
    typeof v === "number" ? !Number.isFinite(v) : typeof v !== "string"
  );
  if (bad >= 0) {
    throw new Error(
      `${what}: colour "${colour.name}" value ${bad} is ${colour.values[bad]}, ` +
        `not a finite number or a string`,
    );
  }
}

function parseHeader(path: string, text: string, kind: EmbeddingKind): EmbeddingsHeader {
  let h: Partial<EmbeddingsHeader>;
  try {
    h = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not JSON (${(err as Error).message})`);
  }
  const fail = (field: string, why: string): never => {
    throw new Error(`${path}: field "${field}" ${why}`);
  };
  if (h === null || typeof h !== "object") throw new Error(`${path}: not a JSON object`);
  if (h.kind !== kind) fail("kind", `is ${JSON.stringify(h.kind)}, expected "${kind}"`);
  if (!Number.isInteger(h.count) || h.count! < 0) fail("count", "is not a count");
  if (!Number.isInteger(h.dim) || h.dim! < 1) fail("dim", "is not a positive integer");
  if (!Array.isArray(h.ids) || h.ids.length !== h.count) {
    fail("ids", `must be an array of count (${h.count}) ids`);
  }
  const colour = h.colour ?? null;
  if (colour !== null) {
    if (typeof colour.name !== "string") fail("colour.name", "is not a string");
    if (!Array.isArray(colour.values) || colour.values.length !== h.count) {
      fail("colour.values", `must be an array of count (${h.count}) values`);
    }
  }
  return { kind, count: h.count!, dim: h.dim!, ids: h.ids!.map(String), colour };
}

function writeAtomically(path: string, bytes: Uint8Array): void {
  const temporary = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    Deno.writeFileSync(temporary, bytes);
    Deno.renameSync(temporary, path);
  } catch (err) {
    try {
      Deno.removeSync(temporary);
    } catch { /* it was never created */ }
    throw new Error(`${path}: cannot write (${(err as Error).message})`);
  }
}

function littleEndianBytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return bytes;
}

function fromLittleEndian(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
