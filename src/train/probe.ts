/**
 * Frozen-embedding evaluation on the host in float64: a multinomial logistic-regression probe
 * (standardised features, L2 penalty, full-batch gradient descent), its k-fold cross-validated
 * accuracy, kNN accuracy (cosine similarity, majority of k, ties to the larger summed similarity)
 * and anisotropy (mean cosine similarity of distinct pairs: 0 for isotropic embeddings, 1 when
 * they all point one way).
 */
import { seededRandom } from "../tensor/random.ts";

/** n vectors of `dim` values, row-major. */
export interface Vectors {
  n: number;
  dim: number;
  data: Float32Array | Float64Array;
}

export interface ProbeOptions {
  classes: number;
  l2?: number;
  iterations?: number;
  lr?: number;
}

export interface LogisticModel {
  mean: Float64Array;
  std: Float64Array;
  /** [classes, dim + 1], the bias last. */
  weights: Float64Array;
  classes: number;
}

function rows(v: Vectors, idx: ArrayLike<number>): Float64Array[] {
  return Array.from(idx, (i) => Float64Array.from(v.data.subarray(i * v.dim, (i + 1) * v.dim)));
}

function standardise(xs: Float64Array[], dim: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (const x of xs) x.forEach((v, j) => (mean[j] += v / xs.length));
  for (const x of xs) x.forEach((v, j) => (std[j] += (v - mean[j]) ** 2 / xs.length));
  std.forEach((v, j) => (std[j] = Math.sqrt(v) || 1));
  return { mean, std };
}

function scores(m: LogisticModel, x: Float64Array, dim: number): Float64Array {
  const out = new Float64Array(m.classes);
  for (let k = 0; k < m.classes; k++) {
    let s = m.weights[k * (dim + 1) + dim];
    for (let j = 0; j < dim; j++) {
      s += m.weights[k * (dim + 1) + j] * ((x[j] - m.mean[j]) / m.std[j]);
    }
    out[k] = s;
  }
  return out;
}

function softmaxInPlace(s: Float64Array): void {
  const top = Math.max(...s);
  let z = 0;
  s.forEach((v, k) => (z += s[k] = Math.exp(v - top)));
  s.forEach((v, k) => (s[k] = v / z));
}

/** Fits the probe on rows `idx` of `v` with labels `y` (by row of v). */
export function fitLogistic(
  v: Vectors,
  y: Int32Array,
  idx: ArrayLike<number>,
  o: ProbeOptions,
): LogisticModel {
  const dim = v.dim;
  const xs = rows(v, idx);
  const labels = Array.from(idx, (i) => y[i]);
  const { mean, std } = standardise(xs, dim);
  const m: LogisticModel = {
    mean,
    std,
    weights: new Float64Array(o.classes * (dim + 1)),
    classes: o.classes,
  };
  const l2 = o.l2 ?? 1e-3;
  const lr = o.lr ?? 0.5;
  const grad = new Float64Array(m.weights.length);
  for (let it = 0; it < (o.iterations ?? 300); it++) {
    grad.fill(0);
    xs.forEach((x, n) => {
      const p = scores(m, x, dim);
      softmaxInPlace(p);
      p[labels[n]] -= 1;
      for (let k = 0; k < o.classes; k++) {
        const row = k * (dim + 1);
        for (let j = 0; j < dim; j++) grad[row + j] += p[k] * ((x[j] - mean[j]) / std[j]);
        grad[row + dim] += p[k];
      }
    });
    for (let w = 0; w < grad.length; w++) {
      const decay = w % (dim + 1) === dim ? 0 : l2 * m.weights[w];
      m.weights[w] -= lr * (grad[w] / xs.length + decay);
    }
  }
  return m;
}

export function predictLogistic(m: LogisticModel, v: Vectors, idx: ArrayLike<number>): Int32Array {
  return Int32Array.from(rows(v, idx), (x) => {
    const s = scores(m, x, v.dim);
    return s.indexOf(Math.max(...s));
  });
}

function accuracy(pred: Int32Array, y: Int32Array, idx: ArrayLike<number>): number {
  let hit = 0;
  pred.forEach((p, n) => (hit += p === y[idx[n]] ? 1 : 0));
  return hit / Math.max(pred.length, 1);
}

/** Accuracy of the probe fitted on `train` and scored on `test`. */
export function probeAccuracy(
  v: Vectors,
  y: Int32Array,
  train: ArrayLike<number>,
  test: ArrayLike<number>,
  o: ProbeOptions,
): number {
  return accuracy(predictLogistic(fitLogistic(v, y, train, o), v, test), y, test);
}

/** k-fold cross-validated probe accuracy over `idx` (seeded folds): mean and standard deviation. */
export function crossValidatedAccuracy(
  v: Vectors,
  y: Int32Array,
  idx: ArrayLike<number>,
  folds: number,
  seed: number,
  o: ProbeOptions,
): { mean: number; std: number } {
  const r = seededRandom(seed);
  const order = Array.from(idx);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  if (order.length < folds) {
    throw new RangeError(`${folds}-fold probe needs ${folds} labelled clients`);
  }
  const accs = Array.from({ length: folds }, (_, f) => {
    const test = order.filter((_, n) => n % folds === f);
    const train = order.filter((_, n) => n % folds !== f);
    return probeAccuracy(v, y, train, test, o);
  });
  const mean = accs.reduce((a, b) => a + b, 0) / folds;
  const std = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / folds);
  return { mean, std };
}

function unit(x: Float64Array): Float64Array {
  const n = Math.hypot(...x) || 1;
  return x.map((v) => v / n);
}

/** kNN accuracy of `test` rows against `train` rows (cosine similarity, majority of k). */
export function knnAccuracy(
  v: Vectors,
  y: Int32Array,
  train: ArrayLike<number>,
  test: ArrayLike<number>,
  k: number,
  classes: number,
): number {
  const tr = rows(v, train).map(unit);
  const trainIdx = Array.from(train);
  let hit = 0;
  for (const [n, x] of rows(v, test).map(unit).entries()) {
    const sims = tr.map((t, m) => ({ s: t.reduce((a, tv, j) => a + tv * x[j], 0), m }));
    sims.sort((a, b) => b.s - a.s);
    const votes = new Float64Array(classes);
    const weight = new Float64Array(classes);
    for (const { s, m } of sims.slice(0, k)) {
      votes[y[trainIdx[m]]]++;
      weight[y[trainIdx[m]]] += s;
    }
    let best = 0;
    for (let c = 1; c < classes; c++) {
      if (votes[c] > votes[best] || (votes[c] === votes[best] && weight[c] > weight[best])) {
        best = c;
      }
    }
    hit += best === y[test[n]] ? 1 : 0;
  }
  return hit / Math.max(test.length, 1);
}

/** Mean cosine similarity over distinct pairs: (‖Σ uᵢ‖² − n) / (n (n − 1)). */
export function anisotropy(v: Vectors): number {
  if (v.n < 2) return NaN;
  const total = new Float64Array(v.dim);
  for (const u of rows(v, Array.from({ length: v.n }, (_, i) => i)).map(unit)) {
    u.forEach((x, j) => (total[j] += x));
  }
  const sq = total.reduce((a, x) => a + x * x, 0);
  return (sq - v.n) / (v.n * (v.n - 1));
}
