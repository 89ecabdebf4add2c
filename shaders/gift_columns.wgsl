// Column statistics of a layer's calibration inputs x [tokens, cols] (src/finetune/salient.ts):
// stats[j] = (max_t |x_tj|, Σ_t |x_tj|^rho), accumulated over passes of at most `count` tokens
// from token `first` (llvmpipe stops loops past ~65k iterations), so stats starts at zero.
struct Params { tokens: u32, cols: u32, first: u32, count: u32, rho: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * 64u;
  if (j >= p.cols) { return; }
  var mx = stats[2u * j];
  var acc = stats[2u * j + 1u];
  let last = min(p.first + p.count, p.tokens);
  for (var t = p.first; t < last; t++) {
    let a = abs(x[t * p.cols + j]);
    mx = max(mx, a);
    // pow(0, ρ) is left undefined in WGSL's precision rules; 0^ρ = 0 for ρ > 0.
    if (a > 0.0) { acc += pow(a, p.rho); }
  }
  stats[2u * j] = mx;
  stats[2u * j + 1u] = acc;
}
