// C = op(A)·op(B) for a batch of matrices, one float per load: any shape, stride and origin.
// The fallback for layouts that matmul_vec4.wgsl cannot load, and the baseline it is measured
// against. Each invocation accumulates a TM×TN tile of C.
struct Params {
  M: u32, N: u32, K: u32, batches: u32,
  lda: u32, ldb: u32, ldc: u32,
  // K of the last batch: shorter than K when the batches are the slices of a split reduction.
  kLast: u32,
  // Origins of batch 0 and batch strides, in floats.
  offA: u32, offB: u32, offC: u32,
  batchA: u32, batchB: u32, batchC: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// llvmpipe runs 8 consecutive invocations as the lanes of one SIMD vector: tiles are numbered
// along a 1-D workgroup, batch after batch, so that every lane has work whatever the shape of C
// (a small C whose long reduction is split into slices, one per batch, fills the lanes with the
// next slices' tiles).
const WG = 8u;

const TM = 8u;
const TN = 8u;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let colTiles = (p.N + TN - 1u) / TN;
  let tiles = (p.M + TM - 1u) / TM * colTiles;
  let index = (wg.x + wg.y * groups.x) * WG + lane;
  let batch = index / tiles;
  if (batch >= p.batches) { return; }
  let tile = index % tiles;
  let row0 = tile / colTiles * TM;
  let col0 = tile % colTiles * TN;
  let baseA = p.offA + batch * p.batchA;
  let baseB = p.offB + batch * p.batchB;
  let kEnd = select(p.K, p.kLast, batch + 1u == p.batches);
  // Element (r, k) of op(A) sits at r·strideRowA + k·strideKA; likewise for op(B).
  let strideRowA = select(p.lda, 1u, TRANS_A);
  let strideKA = select(1u, p.lda, TRANS_A);
  let strideKB = select(p.ldb, 1u, TRANS_B);
  let strideColB = select(1u, p.ldb, TRANS_B);
  var rowAt: array<u32, TM>;
  for (var i = 0u; i < TM; i++) {
    rowAt[i] = baseA + min(row0 + i, p.M - 1u) * strideRowA;
  }
  var colAt: array<u32, TN>;
  for (var j = 0u; j < TN; j++) {
    colAt[j] = baseB + min(col0 + j, p.N - 1u) * strideColB;
  }
  var acc: array<array<f32, TN>, TM>;
  for (var k = 0u; k < kEnd; k++) {
    var ak: array<f32, TM>;
    for (var i = 0u; i < TM; i++) {
      ak[i] = a[rowAt[i] + k * strideKA];
    }
    for (var j = 0u; j < TN; j++) {
      let bk = b[colAt[j] + k * strideKB];
      for (var i = 0u; i < TM; i++) {
        acc[i][j] = fma(ak[i], bk, acc[i][j]);
      }
    }
  }
  let baseC = p.offC + batch * p.batchC;
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) {
      let row = row0 + i;
      let col = col0 + j;
      if (row < p.M && col < p.N) {
        let at = baseC + row * p.ldc + col;
        c[at] = acc[i][j];
      }
    }
  }
}
