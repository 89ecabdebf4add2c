// C = op(A)·op(B) per batch, 64×64 output tiles per workgroup, 4×4 outputs per invocation.
struct Params {
  M: u32, N: u32, K: u32,
  lda: u32, ldb: u32, ldc: u32,
  offA: u32, offB: u32, offC: u32,
  batchA: u32, batchB: u32, batchC: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;

var<workgroup> As: array<array<f32, 64>, 16>;
var<workgroup> Bs: array<array<f32, 64>, 16>;

fn loadA(batch: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  let base = p.offA + batch * p.batchA;
  if (TRANS_A) { return a[base + k * p.lda + m]; }
  return a[base + m * p.lda + k];
}

fn loadB(batch: u32, k: u32, n: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  let base = p.offB + batch * p.batchB;
  if (TRANS_B) { return b[base + n * p.ldb + k]; }
  return b[base + k * p.ldb + n];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let batch = wg.z;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let tid = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let e = tid + i * 256u;
      // A tile: consecutive invocations walk the operand's contiguous dimension.
      if (TRANS_A) {
        As[e / 64u][e % 64u] = loadA(batch, row0 + e % 64u, k0 + e / 64u);
      } else {
        As[e % 16u][e / 16u] = loadA(batch, row0 + e / 16u, k0 + e % 16u);
      }
      if (TRANS_B) {
        Bs[e % 16u][e / 16u] = loadB(batch, k0 + e % 16u, col0 + e / 16u);
      } else {
        Bs[e / 64u][e % 64u] = loadB(batch, k0 + e / 64u, col0 + e % 64u);
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = As[kk][lid.y * 4u + i];
        bv[i] = Bs[kk][lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  let base = p.offC + batch * p.batchC;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y * 4u + i;
    if (row >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (col < p.N) { c[base + row * p.ldc + col] = acc[i][j]; }
    }
  }
}
