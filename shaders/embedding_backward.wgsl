// Embedding backward: rows[u, c] = Σ dy[q, c] over the positions q holding the u-th distinct id.
// The host sorts positions into a CSR (offsets, then positions ascending per id), so each sum is
// taken by one thread in a fixed order: no atomics, bit-identical run to run. dy may be larger
// than one binding: it is bound one window of positions [posLo, posHi) at a time, the first
// window writing the sums and later ones adding theirs.
struct Params {
  n: u32,
  cols: u32,
  uniqueBase: u32,
  posLo: u32,
  posHi: u32,
  positionsAt: u32,
  accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> csr: array<u32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let local = i / p.cols;
  let col = i - local * p.cols;
  let u = p.uniqueBase + local;
  var sum = 0.0;
  for (var k = csr[u]; k < csr[u + 1u]; k++) {
    let pos = csr[p.positionsAt + k];
    if (pos >= p.posHi) { break; }
    if (pos >= p.posLo) {
      sum += dy[(pos - p.posLo) * p.cols + col];
    }
  }
  if (p.accumulate != 0u) {
    rows[i] += sum;
  } else {
    rows[i] = sum;
  }
}
