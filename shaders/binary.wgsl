// Elementwise binary ops on equal shapes, and in-place accumulation.
// OP: 0 add, 1 sub, 2 mul; `accumulate` does a += alpha * b.
struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override OP: u32 = 0u;

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  switch OP {
    case 0u: { out[i] = a[i] + b[i]; }
    case 1u: { out[i] = a[i] - b[i]; }
    default: { out[i] = a[i] * b[i]; }
  }
}
