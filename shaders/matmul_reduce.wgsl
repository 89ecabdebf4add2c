// Sums the slices of a split-K product in slice order (deterministic, no atomics):
// C[r, col] = Σ_s parts[s, r, col], with C at an origin and row stride of its own.
struct Params { rows: u32, cols: u32, slices: u32, ldc: u32, offC: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

// Add into C instead of overwriting it (a later slice of a reduction split across bindings).
override ACCUMULATE: bool = false;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let n = p.rows * p.cols;
  if (i >= n) { return; }
  var sum = 0.0;
  for (var s = 0u; s < p.slices; s++) {
    sum += parts[s * n + i];
  }
  let at = p.offC + i / p.cols * p.ldc + i % p.cols;
  if (ACCUMULATE) {
    c[at] += sum;
  } else {
    c[at] = sum;
  }
}
