// acc += alpha * g, in place (gradient accumulation, SGD-like updates). `main4` takes four
// elements per invocation, for sizes that are multiples of 4 (see dispatchFlat's vec4).
struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> acc4: array<vec4f>;
@group(0) @binding(2) var<storage, read> g4: array<vec4f>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  acc[i] = acc[i] + p.alpha * g[i];
}

// p.n counts vec4s.
@compute @workgroup_size(256)
fn main4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  acc4[i] = acc4[i] + p.alpha * g4[i];
}
