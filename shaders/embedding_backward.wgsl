// Embedding backward: rows[u, c] = Σ dy[q, c] over the positions q holding the u-th distinct id.
// The host sorts positions into a CSR (offsets, then positions ascending per id), so each sum is
// taken by one thread in a fixed order: no atomics, bit-identical run to run. dy may be larger
// than one binding: it is bound one window of positions [posLo, posHi) at a time, the first
// window writing the sums and later ones adding theirs. An id's walk is cut into passes of at
// most `take` occurrences (occurrences [skip, skip + take) of its list) so that no invocation
// loops past llvmpipe's cap; a pass that finds none of its occurrences left adds nothing.
struct Params {
  n: u32,
  cols: u32,
  uniqueBase: u32,
  posLo: u32,
  posHi: u32,
  positionsAt: u32,
  accumulate: u32,
  skip: u32,
  take: u32,
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
  let first = csr[u] + p.skip;
  let end = min(csr[u + 1u], first + p.take);
  if (first >= end && p.accumulate != 0u) { return; }
  var sum = 0.0;
  for (var k = first; k < end; k++) {
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
