import assert from "node:assert/strict";
import {
  fingerprint,
  pcaMap,
  readUmapCache,
  umapApplies,
  umapCachePath,
  umapMap,
  writeUmapCache,
} from "../../src/dashboard/embedding_map.ts";
import { seededRandom } from "../../src/tensor/random.ts";

const vectors = (rows: number[][]) => ({
  count: rows.length,
  dim: rows[0].length,
  vectors: Float32Array.from(rows.flat()),
});

function close(actual: ArrayLike<number>, expected: number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol,
      `[${i}] ${actual[i]} vs ${expected[i]}`,
    );
  }
}

Deno.test("PCA: a hand-checked case, rotated axes off a shifted mean", () => {
  // Centred at (5, 5, 5): spread ±3√2 along (1, 1, 0)/√2 and ±√2 along (1, −1, 0)/√2, none
  // along z. The covariance's eigenvalues are 9 and 1 (of a total variance of 10), so the
  // components hold all of it; each eigenvector's largest entry (the first on a tie) is positive.
  const map = pcaMap(vectors([
    [8, 8, 5],
    [2, 2, 5],
    [6, 4, 5],
    [4, 6, 5],
  ]));
  assert.equal(map.method, "pca");
  const r = Math.SQRT2;
  close(map.x, [3 * r, -3 * r, 0, 0]);
  close(map.y, [0, 0, r, -r]);
  close([map.explained!], [1]);
});

Deno.test("PCA: one dimension, a single point, and a part of the variance held", () => {
  const line = pcaMap(vectors([[1], [3], [5]]));
  close(line.x, [-2, 0, 2]);
  close(line.y, [0, 0, 0]);
  const one = pcaMap(vectors([[1, 2, 3]]));
  close(one.x, [0]);
  assert.equal(one.explained, 1);
  // Equal spread on three axes: two of them hold two thirds.
  const cube = pcaMap(vectors([
    [1, 0, 0],
    [-1, 0, 0],
    [0, 1, 0],
    [0, -1, 0],
    [0, 0, 1],
    [0, 0, -1],
  ]));
  close([cube.explained!], [2 / 3]);
  for (let i = 0; i < 6; i++) assert.ok(Number.isFinite(cube.x[i]) && Number.isFinite(cube.y[i]));
});

/** Three tight clusters far apart in 8 dimensions, 20 points each. */
function clusters(seed: number) {
  const random = seededRandom(seed);
  const rows: number[][] = [];
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 20; i++) {
      rows.push(Array.from({ length: 8 }, (_, j) => (j === c ? 10 : 0) + (random() - 0.5) * 0.5));
    }
  }
  return vectors(rows);
}

Deno.test("UMAP: seeded, so the same vectors give the same map; clusters stay apart", () => {
  const e = clusters(1);
  const a = umapMap(e);
  const b = umapMap(e);
  assert.equal(a.method, "umap");
  assert.deepEqual(Array.from(a.x), Array.from(b.x));
  assert.deepEqual(Array.from(a.y), Array.from(b.y));
  const centre = (c: number) => {
    let x = 0;
    let y = 0;
    for (let i = c * 20; i < (c + 1) * 20; i++) [x, y] = [x + a.x[i] / 20, y + a.y[i] / 20];
    return [x, y];
  };
  const spread = (c: number) => {
    const [cx, cy] = centre(c);
    let s = 0;
    for (let i = c * 20; i < (c + 1) * 20; i++) {
      s = Math.max(s, Math.hypot(a.x[i] - cx, a.y[i] - cy));
    }
    return s;
  };
  for (let c = 0; c < 3; c++) {
    for (let o = c + 1; o < 3; o++) {
      const [ax, ay] = centre(c);
      const [bx, by] = centre(o);
      assert.ok(Math.hypot(ax - bx, ay - by) > spread(c) + spread(o), `clusters ${c} and ${o}`);
    }
  }
  assert.throws(() => umapMap(vectors([[1, 2], [3, 4]])), /at least 16 points, got 2/);
  assert.equal(umapApplies(15), false);
  assert.equal(umapApplies(12101), true);
  assert.equal(umapApplies(100_000), false);
});

Deno.test("UMAP cache: read back for the same vectors, stale for others, ignored when bad", () => {
  const dir = Deno.makeTempDirSync();
  const e = clusters(2);
  const map = {
    method: "umap" as const,
    x: new Float64Array(60).fill(1.23456),
    y: new Float64Array(60),
  };
  assert.equal(readUmapCache(dir, "clients", e), null);
  writeUmapCache(dir, "clients", e, map, 1.5);
  const back = readUmapCache(dir, "clients", e)!;
  assert.equal(back.method, "umap");
  close(back.x, Array(60).fill(1.2346));
  const changed = { ...e, vectors: e.vectors.slice() };
  changed.vectors[7] += 1e-3;
  assert.notEqual(fingerprint(changed), fingerprint(e));
  assert.equal(readUmapCache(dir, "clients", changed), null);
  assert.equal(readUmapCache(dir, "items", e), null);
  Deno.writeTextFileSync(umapCachePath(dir, "clients"), "{ half a fi");
  assert.equal(readUmapCache(dir, "clients", e), null);
  Deno.removeSync(dir, { recursive: true });
});
