/**
 * 2-D maps of a run's embeddings for the dashboard. PCA (float64, two leading eigenvectors of the
 * covariance) is instant and always available; UMAP (the npm `umap-js` package, seeded, so the
 * same embeddings give the same map) shows neighbourhoods far better but takes seconds to minutes,
 * so it is computed once, off the request path, and cached beside the embeddings as
 * `embeddings-<kind>.map-umap.json`, tied to the vectors by a fingerprint.
 */
import { UMAP } from "umap-js";
import type { EmbeddingKind, Embeddings } from "../store/embeddings.ts";
import { seededRandom } from "../tensor/random.ts";

export type MapMethod = "umap" | "pca";

export interface EmbeddingMap {
  method: MapMethod;
  /** Per row of the embeddings, its place on the map. */
  x: Float64Array;
  y: Float64Array;
  /** PCA: the share of the total variance the two components hold (0–1). */
  explained?: number;
}

/** Vectors as readEmbeddings gives them: count rows of dim values. */
export type Vectors = Pick<Embeddings, "count" | "dim" | "vectors">;

/** UMAP needs more points than neighbours; below this a map is PCA only. */
export const UMAP_MIN_COUNT = 16;
/**
 * Above this many points UMAP would hold a core for many minutes (Beauty's 12,101 took 93 s on a
 * shared 2-core VM, and it grows faster than linearly); the map stays PCA.
 */
export const UMAP_MAX_COUNT = 20_000;
export const UMAP_SEED = 42;
export const UMAP_NEIGHBOURS = 15;
export const UMAP_MIN_DIST = 0.1;

const POWER_ITERATIONS = 1000;
const POWER_TOLERANCE = 1e-12;

/** The two principal components of the rows, with their coordinates for every row. */
export function pcaMap(e: Vectors): EmbeddingMap {
  const { count, dim, vectors } = e;
  const mean = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < dim; j++) mean[j] += vectors[i * dim + j];
  }
  for (let j = 0; j < dim; j++) mean[j] /= Math.max(1, count);
  const cov = covariance(e, mean);
  let trace = 0;
  for (let j = 0; j < dim; j++) trace += cov[j * dim + j];
  const [first, second] = leadingEigenvectors(cov, dim);
  const x = new Float64Array(count);
  const y = new Float64Array(count);
  const row = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < dim; j++) row[j] = vectors[i * dim + j] - mean[j];
    x[i] = dot(row, first.vector);
    y[i] = second ? dot(row, second.vector) : 0;
  }
  const held = first.value + (second?.value ?? 0);
  return { method: "pca", x, y, explained: trace > 0 ? Math.min(1, held / trace) : 1 };
}

/** Σ (x − mean)(x − mean)ᵀ / count, dim × dim, row-major. */
function covariance(e: Vectors, mean: Float64Array): Float64Array {
  const { count, dim, vectors } = e;
  const cov = new Float64Array(dim * dim);
  const row = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < dim; j++) row[j] = vectors[i * dim + j] - mean[j];
    for (let a = 0; a < dim; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < dim; b++) cov[a * dim + b] += ra * row[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b] / Math.max(1, count);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return cov;
}

interface Eigen {
  value: number;
  vector: Float64Array;
}

/**
 * The two largest eigenpairs of a symmetric positive semi-definite matrix, by power iteration
 * with deflation. Each vector's sign is fixed (its largest entry, the first on a tie, is
 * positive) so a map does not flip between two computations.
 */
function leadingEigenvectors(m: Float64Array, n: number): [Eigen, Eigen | null] {
  const first = powerIteration(m, n, null);
  if (n < 2) return [first, null];
  return [first, powerIteration(m, n, first)];
}

function powerIteration(m: Float64Array, n: number, deflate: Eigen | null): Eigen {
  // A start with a part along every axis (all ones) and no symmetry that could hide a direction.
  let v: Float64Array = new Float64Array(n).map((_, i) => 1 + i / (n + 1));
  if (deflate) orthogonalise(v, deflate.vector);
  if (!normalise(v)) return { value: 0, vector: unitVector(n, deflate ? 1 : 0) };
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    const next = multiply(m, n, v);
    if (deflate) orthogonalise(next, deflate.vector);
    const norm = Math.sqrt(dot(next, next));
    if (norm === 0) return { value: 0, vector: fixSign(v) };
    for (let i = 0; i < n; i++) next[i] /= norm;
    let change = 0;
    for (let i = 0; i < n; i++) change = Math.max(change, Math.abs(next[i] - v[i]));
    v = next;
    if (change < POWER_TOLERANCE) break;
  }
  return { value: dot(v, multiply(m, n, v)), vector: fixSign(v) };
}

function multiply(m: Float64Array, n: number, v: Float64Array): Float64Array {
  const out = new Float64Array(n);
  for (let a = 0; a < n; a++) {
    let s = 0;
    for (let b = 0; b < n; b++) s += m[a * n + b] * v[b];
    out[a] = s;
  }
  return out;
}

function orthogonalise(v: Float64Array, against: Float64Array): void {
  const d = dot(v, against);
  for (let i = 0; i < v.length; i++) v[i] -= d * against[i];
}

function normalise(v: Float64Array): boolean {
  const norm = Math.sqrt(dot(v, v));
  if (!(norm > 1e-300)) return false;
  for (let i = 0; i < v.length; i++) v[i] /= norm;
  return true;
}

function unitVector(n: number, axis: number): Float64Array {
  const v = new Float64Array(n);
  v[Math.min(axis, n - 1)] = 1;
  return v;
}

function fixSign(v: Float64Array): Float64Array {
  let largest = 0;
  for (let i = 1; i < v.length; i++) {
    if (Math.abs(v[i]) > Math.abs(v[largest]) + 1e-9) largest = i;
  }
  if (v[largest] < 0) { for (let i = 0; i < v.length; i++) v[i] = -v[i]; }
  return v;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** UMAP of the rows (seeded: the same vectors and seed give the same map). */
export function umapMap(e: Vectors, seed = UMAP_SEED): EmbeddingMap {
  const { count, dim, vectors } = e;
  if (count < UMAP_MIN_COUNT) {
    throw new Error(`UMAP needs at least ${UMAP_MIN_COUNT} points, got ${count}`);
  }
  const rows: number[][] = [];
  for (let i = 0; i < count; i++) rows.push(Array.from(vectors.subarray(i * dim, (i + 1) * dim)));
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: UMAP_NEIGHBOURS,
    minDist: UMAP_MIN_DIST,
    random: seededRandom(seed),
  });
  const points = umap.fit(rows);
  return {
    method: "umap",
    x: Float64Array.from(points, (p) => p[0]),
    y: Float64Array.from(points, (p) => p[1]),
  };
}

/** Whether UMAP is worth computing for this many points (else the map stays PCA). */
export function umapApplies(count: number): boolean {
  return count >= UMAP_MIN_COUNT && count <= UMAP_MAX_COUNT;
}

/**
 * A short hash (FNV-1a over the float bits, with the shape) that ties a cached map to the vectors
 * it was computed from: embeddings written again give a new fingerprint and the cache is stale.
 */
export function fingerprint(e: Vectors): string {
  const words = new Uint32Array(
    e.vectors.buffer,
    e.vectors.byteOffset,
    e.vectors.length,
  );
  let h = 0x811c9dc5;
  const mix = (w: number) => {
    for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((w >>> s) & 0xff), 0x01000193);
  };
  mix(e.count);
  mix(e.dim);
  for (let i = 0; i < words.length; i++) mix(words[i]);
  return `${e.count}x${e.dim}-${(h >>> 0).toString(16).padStart(8, "0")}`;
}

interface UmapCacheFile {
  method: "umap";
  fingerprint: string;
  seed: number;
  neighbours: number;
  minDist: number;
  seconds: number;
  x: number[];
  y: number[];
}

export function umapCachePath(dir: string, kind: EmbeddingKind): string {
  return `${dir}/embeddings-${kind}.map-umap.json`;
}

/** The cached UMAP of these embeddings; null when there is none, or it is stale or unreadable. */
export function readUmapCache(dir: string, kind: EmbeddingKind, e: Vectors): EmbeddingMap | null {
  let file: UmapCacheFile;
  try {
    file = JSON.parse(Deno.readTextFileSync(umapCachePath(dir, kind)));
  } catch {
    return null;
  }
  if (
    file?.method !== "umap" || file.fingerprint !== fingerprint(e) ||
    !Array.isArray(file.x) || !Array.isArray(file.y) ||
    file.x.length !== e.count || file.y.length !== e.count
  ) return null;
  return { method: "umap", x: Float64Array.from(file.x), y: Float64Array.from(file.y) };
}

/** Caches a UMAP map, written whole to a temporary name and renamed into place. */
export function writeUmapCache(
  dir: string,
  kind: EmbeddingKind,
  e: Vectors,
  map: EmbeddingMap,
  seconds: number,
): void {
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  const file: UmapCacheFile = {
    method: "umap",
    fingerprint: fingerprint(e),
    seed: UMAP_SEED,
    neighbours: UMAP_NEIGHBOURS,
    minDist: UMAP_MIN_DIST,
    seconds: round(seconds),
    x: Array.from(map.x, round),
    y: Array.from(map.y, round),
  };
  const path = umapCachePath(dir, kind);
  const temporary = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  Deno.writeTextFileSync(temporary, JSON.stringify(file) + "\n");
  Deno.renameSync(temporary, path);
}
