// C = op(A)·op(B) for a batch of matrices, loading A and B as vec4 along their contiguous
// dimension. llvmpipe gathers a storage load lane by lane, so loads, not FMAs, bound the speed:
// each invocation accumulates a TM×TN tile of C and reuses every loaded vec4 across a row or a
// column of it. Needs A's and B's row strides and origins to be multiples of 4 floats.
//
// Two entry points: `main` stores C as vec4 (N, ldc and offC multiples of 4), `scalar_c` stores
// one float at a time (any C layout, e.g. scores against a table of 1,000,001 items); unrolled
// scalar stores make the kernel several times slower to compile, so `main` is used when it can.
struct Params {
  M: u32, N: u32, K: u32, batches: u32,
  // Row strides: vec4 units for A and B, floats for C.
  lda: u32, ldb: u32, ldc: u32,
  // K of the last batch: shorter than K when the batches are the slices of a split reduction.
  kLast: u32,
  // Origins of batch 0 and batch strides, in the units of the strides.
  offA: u32, offB: u32, offC: u32,
  batchA: u32, batchB: u32, batchC: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> b: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> cFloats: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// `main` adds the product to what C holds (a gradient gathered from another use of the input).
override ACCUMULATE: bool = false;
// WG (invocations per workgroup), TM and TN (the tile of C per invocation) are prepended by
// matmul.ts, one variant per choice: llvmpipe runs 8 consecutive invocations as one SIMD vector
// and favours 8 and big tiles; a GPU wants wider workgroups. The fastest variant is measured per adapter.
const TN4 = TN / 4u;

struct Tile {
  row0: u32,
  col0: u32,
  batch: u32,
  valid: bool,
}

// Tiles are numbered batch after batch, so that the lanes of a workgroup fill up with the next
// batch's tiles when a matrix has fewer tiles than WG (weight gradients: a small C whose long
// reduction is split into slices, one per batch).
fn tileOf(wg: vec3u, groups: vec3u, lane: u32) -> Tile {
  let colTiles = (p.N + TN - 1u) / TN;
  let tiles = (p.M + TM - 1u) / TM * colTiles;
  let index = (wg.x + wg.y * groups.x) * WG + lane;
  let tile = index % tiles;
  var t: Tile;
  t.row0 = tile / colTiles * TM;
  t.col0 = tile % colTiles * TN;
  t.batch = index / tiles;
  t.valid = t.batch < p.batches;
  return t;
}

// The TM×TN block of op(A)·op(B) at the tile; rows and columns past the edge repeat the last one.
// Each step loads four k of both operands, then updates every element of the tile once with four
// FMAs: the tile lives in memory (it does not fit in registers), so one read-modify-write per
// element and step is what this order saves.
fn product(t: Tile) -> array<array<vec4f, TN4>, TM> {
  let baseA = p.offA + t.batch * p.batchA;
  let baseB = p.offB + t.batch * p.batchB;
  let kEnd = select(p.K, p.kLast, t.batch + 1u == p.batches);
  let lastRow = p.M - 1u;
  let lastCol = p.N - 1u;
  var acc: array<array<vec4f, TN4>, TM>;
  for (var k = 0u; k < kEnd; k += 4u) {
    // av[i][kk] = op(A)[row0 + i, k + kk], bv[kk][j4] = op(B)[k + kk, col0 + 4·j4 .. + 3]; past
    // kEnd (TN only: it has no K % 4 constraint) both are zero.
    var av: array<vec4f, TM>;
    var bv: array<array<vec4f, TN4>, 4>;
    if (TRANS_A) {
      for (var kk = 0u; kk < 4u; kk++) {
        let rowK = baseA + min(k + kk, kEnd - 1u) * p.lda;
        let live = k + kk < kEnd;
        for (var i4 = 0u; i4 < TM / 4u; i4++) {
          let v = select(vec4f(0.0), a[rowK + min(t.row0 / 4u + i4, lastRow / 4u)], live);
          av[i4 * 4u][kk] = v.x;
          av[i4 * 4u + 1u][kk] = v.y;
          av[i4 * 4u + 2u][kk] = v.z;
          av[i4 * 4u + 3u][kk] = v.w;
        }
      }
    } else {
      for (var i = 0u; i < TM; i++) {
        av[i] = a[baseA + min(t.row0 + i, lastRow) * p.lda + k / 4u];
      }
    }
    if (TRANS_B) {
      for (var j4 = 0u; j4 < TN4; j4++) {
        let col = t.col0 + j4 * 4u;
        let n0 = b[baseB + min(col, lastCol) * p.ldb + k / 4u];
        let n1 = b[baseB + min(col + 1u, lastCol) * p.ldb + k / 4u];
        let n2 = b[baseB + min(col + 2u, lastCol) * p.ldb + k / 4u];
        let n3 = b[baseB + min(col + 3u, lastCol) * p.ldb + k / 4u];
        bv[0][j4] = vec4f(n0.x, n1.x, n2.x, n3.x);
        bv[1][j4] = vec4f(n0.y, n1.y, n2.y, n3.y);
        bv[2][j4] = vec4f(n0.z, n1.z, n2.z, n3.z);
        bv[3][j4] = vec4f(n0.w, n1.w, n2.w, n3.w);
      }
    } else {
      for (var kk = 0u; kk < 4u; kk++) {
        let rowK = baseB + min(k + kk, kEnd - 1u) * p.ldb;
        let live = k + kk < kEnd;
        for (var j4 = 0u; j4 < TN4; j4++) {
          bv[kk][j4] = select(vec4f(0.0), b[rowK + min(t.col0 / 4u + j4, lastCol / 4u)], live);
        }
      }
    }
    for (var i = 0u; i < TM; i++) {
      for (var j4 = 0u; j4 < TN4; j4++) {
        var s = acc[i][j4];
        s = fma(vec4f(av[i].x), bv[0][j4], s);
        s = fma(vec4f(av[i].y), bv[1][j4], s);
        s = fma(vec4f(av[i].z), bv[2][j4], s);
        acc[i][j4] = fma(vec4f(av[i].w), bv[3][j4], s);
      }
    }
  }
  return acc;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let t = tileOf(wg, groups, lane);
  if (!t.valid) { return; }
  let acc = product(t);
  let baseC = p.offC + t.batch * p.batchC;
  for (var i = 0u; i < TM; i++) {
    for (var j4 = 0u; j4 < TN4; j4++) {
      let row = t.row0 + i;
      let col = t.col0 + j4 * 4u;
      if (row < p.M && col < p.N) {
        let at = (baseC + row * p.ldc + col) / 4u;
        if (ACCUMULATE) {
          c[at] += acc[i][j4];
        } else {
          c[at] = acc[i][j4];
        }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn scalar_c(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let t = tileOf(wg, groups, lane);
  if (!t.valid) { return; }
  let acc = product(t);
  let baseC = p.offC + t.batch * p.batchC;
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) {
      let row = t.row0 + i;
      let col = t.col0 + j;
      if (row < p.M && col < p.N) {
        let at = baseC + row * p.ldc + col;
        cFloats[at] = acc[i][j / 4u][j % 4u];
      }
    }
  }
}
