// Elementwise binary ops on equal shapes, and in-place accumulation.
// OP: 0 add, 1 sub, 2 mul. `forward4` takes four elements per invocation, for sizes that are
// multiples of 4 (see dispatchFlat's vec4).
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

@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;

// p.n counts vec4s.
@compute @workgroup_size(256)
fn forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  switch OP {
    case 0u: { out4[i] = a4[i] + b4[i]; }
    case 1u: { out4[i] = a4[i] - b4[i]; }
    default: { out4[i] = a4[i] * b4[i]; }
  }
}
