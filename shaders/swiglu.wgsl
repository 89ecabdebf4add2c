// SwiGLU's gate: out = silu(a) · b = a · σ(a) · b elementwise (Llama's feed-forward multiplies
// silu(gate_proj x) by up_proj x). Backward: da = g · b · σ(a) · (1 + a · (1 − σ(a))),
// db = g · silu(a). The `4` entries take four elements per invocation (sizes that are multiples
// of 4, see dispatchFlat's vec4).
//
// The `packed` entries take a and b from one tensor x [rows, 2·half]: a row's gate in its first
// half, its up in the second (the product against gate and up weights stacked), out [rows, half]
// and dx [rows, 2·half] (bound as `da`); `half` counts in the entry's units (f32 or vec4), and
// inv_half is 1 / half.
struct Params { n: u32, half: u32, inv_half: f32 }
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

// Where element i of out [rows, half] finds its gate in x [rows, 2·half]; its up is `half` on.
// The row is i / half through a float product, corrected to the exact quotient: llvmpipe divides
// integers lane by lane, which made these kernels twice as slow as the unpacked ones.
fn gate_at(i: u32) -> u32 {
  var row = u32(f32(i) * p.inv_half);
  while (row * p.half > i) { row -= 1u; }
  while ((row + 1u) * p.half <= i) { row += 1u; }
  return i + row * p.half;
}

@compute @workgroup_size(256)
fn packed_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let j = gate_at(i);
  let v = a[j];
  out[i] = v * stable_sigmoid(v) * a[j + p.half];
}

@compute @workgroup_size(256)
fn packed_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let j = gate_at(i);
  let v = a[j];
  let s = stable_sigmoid(v);
  da[j] = g[i] * a[j + p.half] * s * (1.0 + v * (1.0 - s));
  da[j + p.half] = g[i] * v * s;
}

@compute @workgroup_size(256)
fn packed_forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let j = gate_at(i);
  let v = a4[j];
  out4[i] = v * stable_sigmoid4(v) * a4[j + p.half];
}

@compute @workgroup_size(256)
fn packed_backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let j = gate_at(i);
  let v = a4[j];
  let s = stable_sigmoid4(v);
  let gi = g4[i];
  da4[j] = gi * a4[j + p.half] * s * (1.0 + v * (1.0 - s));
  da4[j + p.half] = gi * v * s;
}
