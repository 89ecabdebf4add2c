// SwiGLU's gate: out = silu(a) · b = a · σ(a) · b elementwise (Llama's feed-forward multiplies
// silu(gate_proj x) by up_proj x). Backward: da = g · b · σ(a) · (1 + a · (1 − σ(a))),
// db = g · silu(a). The `4` entries take four elements per invocation (sizes that are multiples
// of 4, see dispatchFlat's vec4).
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<storage, read_write> db: array<f32>;

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

// Overflow-free: exp of a large positive argument would give inf / inf.
fn stable_sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

fn stable_sigmoid4(v: vec4f) -> vec4f {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= vec4f(0.0));
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = a[i];
  out[i] = v * stable_sigmoid(v) * b[i];
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = a[i];
  let s = stable_sigmoid(v);
  da[i] = g[i] * b[i] * s * (1.0 + v * (1.0 - s));
  db[i] = g[i] * v * s;
}

@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(4) var<storage, read> g4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> da4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> db4: array<vec4f>;

@compute @workgroup_size(256)
fn forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = a4[i];
  out4[i] = v * stable_sigmoid4(v) * b4[i];
}

@compute @workgroup_size(256)
fn backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = a4[i];
  let s = stable_sigmoid4(v);
  let gi = g4[i];
  da4[i] = gi * b4[i] * s * (1.0 + v * (1.0 - s));
  db4[i] = gi * v * s;
}
