// Sums the slices of a split-K product in slice order (deterministic, no atomics):
// C[r, col] = Σ_s parts[s, r, col], with C at an origin and row stride of its own.
struct Params { rows: u32, cols: u32, slices: u32, ldc: u32, offC: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read> parts4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read_write> c4: array<vec4f>;

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

// Four columns per invocation (cols, ldc and offC multiples of 4), in the same order: llvmpipe
// gathers a load lane by lane, a vec4 at about the cost of a float.
@compute @workgroup_size(256)
fn sum_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let n4 = p.rows * p.cols / 4u;
  if (i >= n4) { return; }
  var sum = vec4f(0.0);
  for (var s = 0u; s < p.slices; s++) {
    sum += parts4[s * n4 + i];
  }
  let cols4 = p.cols / 4u;
  let at = (p.offC + i / cols4 * p.ldc) / 4u + i % cols4;
  if (ACCUMULATE) {
    c4[at] += sum;
  } else {
    c4[at] = sum;
  }
}
