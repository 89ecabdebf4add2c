// Rotary position embeddings with adjacent pairs (llama2.c's and Meta's order): in every head of
// x [rows, D], features (2i, 2i + 1) rotate by the angle pos · θ_i of their row's position,
// (x0, x1) → (x0 cos − x1 sin, x0 sin + x1 cos). table [positions, dh] holds (cos, sin) of every
// frequency i < dh / 2 per position, computed on the host in float64 (WGSL's sin and cos lose
// accuracy on arguments in the hundreds). p.dir = −1 rotates by the opposite angle: the backward,
// since a rotation's transpose is its inverse. One invocation per pair; x and y are bound as a
// window of pairs starting at pair p.first, positions and table whole. `main4` rotates two
// adjacent pairs per invocation (head dimensions that are multiples of 4: both pairs in one head,
// their (cos, sin) adjacent in the table), x and y windows of quads starting at quad p.first:
// llvmpipe fetches storage lane by lane, and one vec4 fetch costs about what a vec2 one does.
struct Params { n: u32, first: u32, half_d: u32, half_dh: u32, dir: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec2f>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> table: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> y: array<vec2f>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let pair = p.first + i;
  let row = pair / p.half_d;
  let freq = (pair % p.half_d) % p.half_dh;
  let cs = table[u32(positions[row]) * p.half_dh + freq];
  let s = cs.y * p.dir;
  let v = x[i];
  y[i] = vec2f(v.x * cs.x - v.y * s, v.x * s + v.y * cs.x);
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(3) var<storage, read> table4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(256)
fn main4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let pair = 2u * (p.first + i);
  let row = pair / p.half_d;
  let freq = (pair % p.half_d) % p.half_dh;
  let cs = table4[(u32(positions[row]) * p.half_dh + freq) / 2u];
  let s = vec2f(cs.y, cs.w) * p.dir;
  let c = vec2f(cs.x, cs.z);
  let v = x4[i];
  let x0 = vec2f(v.x, v.z);
  let x1 = vec2f(v.y, v.w);
  let r0 = x0 * c - x1 * s;
  let r1 = x0 * s + x1 * c;
  y4[i] = vec4f(r0.x, r1.x, r0.y, r1.y);
}
