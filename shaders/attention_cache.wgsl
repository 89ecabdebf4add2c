// Attention of one new query per sequence over a key-value cache, for incremental decoding
// (inference only: no backward). The cache of a layer is [B, max_len, kv_heads · dh]: rows
// [0, len) hold the keys (or values) of the positions decoded so far.
//   append: writes src [B, rows, kv_heads · dh] into rows [pos, pos + rows) of cache.
//   scores: scores[b, h, s] = q[b, h] · k[b, s, kv head of h] · scale for s < len.
//   top:    state[b, h] = max_s scores[b, h, s] (the softmax's shift).
//   mix:    out[b, h, d] = Σ_s softmax(scores[b, h, ·])_s · v[b, s, kv head of h, d].
// Query head h reads kv head h / (heads / kv_heads) (grouped-query attention). One invocation per
// element (append), per score, per row (top) or per output element (mix). top and mix walk the
// positions [start, stop) of a pass and carry their running max, or sum of weights (state, after
// the B · heads maxima) and weighted sum (out), to the next pass; the last (stop = len) divides.
// The host keeps a pass within llvmpipe's loop budget; the sums run in the same order either way.
struct Params {
  n: u32,
  heads: u32,
  kv_heads: u32,
  dh: u32,
  max_len: u32,
  len: u32,
  pos: u32,
  rows: u32,
  scale: f32,
  start: u32,
  stop: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

@compute @workgroup_size(64)
fn append(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let width = p.kv_heads * p.dh;
  let b = i / (p.rows * width);
  let rest = i % (p.rows * width);
  cache[(b * p.max_len + p.pos) * width + rest] = src[i];
}

@compute @workgroup_size(64)
fn score(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let s = i % p.len;
  let bh = i / p.len;
  let b = bh / p.heads;
  let g = (bh % p.heads) / (p.heads / p.kv_heads);
  let qAt = bh * p.dh;
  let kAt = (b * p.max_len + s) * p.kv_heads * p.dh + g * p.dh;
  var dot = 0.0;
  for (var d = 0u; d < p.dh; d++) { dot += q[qAt + d] * cache[kAt + d]; }
  scores[bh * p.max_len + s] = dot * p.scale;
}

@compute @workgroup_size(64)
fn top(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let bh = index(gid, nwg);
  if (bh >= p.n) { return; }
  let row = bh * p.max_len;
  var m = select(-3.0e38, state[bh], p.start > 0u);
  for (var s = p.start; s < p.stop; s++) { m = max(m, scores[row + s]); }
  state[bh] = m;
}

@compute @workgroup_size(64)
fn mix(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let d = i % p.dh;
  let bh = i / p.dh;
  let b = bh / p.heads;
  let g = (bh % p.heads) / (p.heads / p.kv_heads);
  let row = bh * p.max_len;
  let m = state[bh];
  let zAt = p.n / p.dh + i;
  var z = select(0.0, state[zAt], p.start > 0u);
  var acc = select(0.0, out[i], p.start > 0u);
  let vAt = b * p.max_len * p.kv_heads * p.dh + g * p.dh + d;
  for (var s = p.start; s < p.stop; s++) {
    let w = exp(scores[row + s] - m);
    z += w;
    acc += w * cache[vAt + s * p.kv_heads * p.dh];
  }
  if (p.stop < p.len) {
    state[zAt] = z;
    out[i] = acc;
  } else {
    out[i] = acc / z;
  }
}
