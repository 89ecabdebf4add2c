// The phases of one Llama layer for one new token in batch-1 decoding (inference only, no
// backward); composed after decode_params.wgsl and decode_layer.wgsl, which binds x, work, rot,
// the layer's caches kc, vc and its weights n1, wq, wk, wv, wo, n2, wg, wu, wd, and declares WG
// and LANE_ROWS.
//   qkv:      n = rmsnorm(x)·n1; q, k, v = Wq n, Wk n, Wv n; q and k rotated at position pos;
//             k and v written to row pos of the layer's caches, q to work[q_at..].
//   attend:   per query head h: softmax(q_h · k[0..pos, g]ᵀ · scale) v[0..pos, g] → work[att_at..],
//             g = h / (heads / kv_heads) (grouped-query attention).
//   out_proj: x += Wo · att.
//   ffn_up:   m = rmsnorm(x)·n2; hid = silu(Wg m) · (Wu m) → work[hid_at..].
//   ffn_down: x += Wd · hid.
// x [dim] is the residual stream, kept on the GPU between layers and tokens. A cache is
// [max_len, kv_heads · dh] (one sequence); rot is the model's rotary table [positions, dh] with
// (cos, sin) of frequency i at 2i, 2i + 1. Weights are [out, in] row-major, as Linear stores them.
// LANE_ROWS = 1: each invocation computes whole rows (no barriers: llvmpipe runs a workgroup as a
// loop over SIMD vectors, and barriers split that loop); LANE_ROWS = 0: a workgroup computes a
// row, its invocations striding over the columns and summing in a tree (a GPU's shape). The host
// counts an invocation's loops against llvmpipe's budget (decode.ts: laneIterations, and
// splitAttention, which takes long caches to the attend_*_long entries and their passes).
var<workgroup> red: array<vec2f, WG>;

// The workgroup's sum of v, for every invocation; reached by the whole workgroup.
fn sum2(lid: u32, v: vec2f) -> vec2f {
  red[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn max1(lid: u32, v: f32) -> f32 {
  red[lid] = vec2f(v, 0.0);
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid].x = max(red[lid].x, red[lid + k].x); }
    workgroupBarrier();
  }
  let m = red[0].x;
  workgroupBarrier();
  return m;
}

// 1 / sqrt(mean(x²) + eps) of the residual stream. With LANE_ROWS every invocation sums all of
// x itself (the same addresses for all: no barrier); otherwise the workgroup shares the sum.
fn inv_rms(lid: u32) -> f32 {
  if (LANE_ROWS == 1u) {
    var s = 0.0;
    for (var c = 0u; c < p.dim; c++) { s += x[c] * x[c]; }
    return inverseSqrt(s / f32(p.dim) + p.eps);
  }
  var s = 0.0;
  for (var c = lid; c < p.dim; c += WG) { s += x[c] * x[c]; }
  return inverseSqrt(sum2(lid, vec2f(s, 0.0)).x / f32(p.dim) + p.eps);
}

// Partial dots over columns c0, c0 + step, …: rows r and r + 1 of the stacked [Wq; Wk; Wv]
// against x·n1 (a pair never straddles two matrices: dim and kv width are even).
fn part_qkv(r: u32, c0: u32, step: u32) -> vec2f {
  let kv = p.kv_heads * p.dh;
  var acc = vec2f(0.0);
  for (var c = c0; c < p.dim; c += step) {
    let v = x[c] * n1[c];
    if (r < p.dim) {
      acc += vec2f(wq[r * p.dim + c], wq[(r + 1u) * p.dim + c]) * v;
    } else if (r < p.dim + kv) {
      let k = r - p.dim;
      acc += vec2f(wk[k * p.dim + c], wk[(k + 1u) * p.dim + c]) * v;
    } else {
      let k = r - p.dim - kv;
      acc += vec2f(wv[k * p.dim + c], wv[(k + 1u) * p.dim + c]) * v;
    }
  }
  return acc;
}

// Rows r, r + 1 of [q; k; v] (already scaled by the norm): rotate q and k, store all three.
fn store_qkv(pos: u32, r: u32, d: vec2f) {
  let kv = p.kv_heads * p.dh;
  let local = select(select(r - p.dim - kv, r - p.dim, r < p.dim + kv), r, r < p.dim);
  if (r >= p.dim + kv) {
    vc[pos * kv + local] = d.x;
    vc[pos * kv + local + 1u] = d.y;
    return;
  }
  let at = pos * p.dh + (local % p.dh);
  let cs = vec2f(rot[at], rot[at + 1u]);
  let y = vec2f(d.x * cs.x - d.y * cs.y, d.x * cs.y + d.y * cs.x);
  if (r < p.dim) {
    work[p.q_at + local] = y.x;
    work[p.q_at + local + 1u] = y.y;
  } else {
    kc[pos * kv + local] = y.x;
    kc[pos * kv + local + 1u] = y.y;
  }
}

fn phase_qkv(pos: u32, g: u32, ng: u32, lid: u32) {
  let inv = inv_rms(lid);
  let pairs = (p.dim + 2u * p.kv_heads * p.dh) / 2u;
  if (LANE_ROWS == 1u) {
    for (var u = g * WG + lid; u < pairs; u += ng * WG) { store_qkv(pos, 2u * u, part_qkv(2u * u, 0u, 1u) * inv); }
    return;
  }
  for (var u = g; u < pairs; u += ng) {
    let d = sum2(lid, part_qkv(2u * u, lid, WG)) * inv;
    if (lid == 0u) { store_qkv(pos, 2u * u, d); }
  }
}

// Scores work[row .. row + len) → exp(score − top), in place; returns their sum over the workgroup.
fn exp_scores(row: u32, len: u32, top: f32, lid: u32) -> f32 {
  var z = 0.0;
  for (var s = lid; s < len; s += WG) {
    let w = exp(work[row + s] - top);
    work[row + s] = w;
    z += w;
  }
  return sum2(lid, vec2f(z, 0.0)).x;
}

// Head h's attention over cached positions [0, pos]; scores live in work[scores_at + h·max_len..].
fn attend_head(pos: u32, h: u32, lid: u32) {
  let kv = p.kv_heads * p.dh;
  let g = h / (p.heads / p.kv_heads);
  let len = pos + 1u;
  let row = p.scores_at + h * p.max_len;
  var m = -3.0e38;
  for (var s = lid; s < len; s += WG) {
    var dot = 0.0;
    for (var d = 0u; d < p.dh; d++) { dot += work[p.q_at + h * p.dh + d] * kc[s * kv + g * p.dh + d]; }
    work[row + s] = dot * p.scale;
    m = max(m, dot * p.scale);
  }
  let total = exp_scores(row, len, max1(lid, m), lid);
  storageBarrier();
  for (var d = lid; d < p.dh; d += WG) {
    var acc = 0.0;
    for (var s = 0u; s < len; s++) { acc += work[row + s] * vc[s * kv + g * p.dh + d]; }
    work[p.att_at + h * p.dh + d] = acc / total;
  }
}

fn phase_attend(pos: u32, g: u32, ng: u32, lid: u32) {
  for (var h = g; h < p.heads; h += ng) { attend_head(pos, h, lid); }
}

// The split schedule's attention over a cache too long for attend_head's loops (llvmpipe), as
// three dispatches: an invocation per (head, position) score; a workgroup per head that turns
// its row of scores into softmax weights; an invocation per (head, feature) summing the weighted
// values of positions [start, stop) onto what the passes before it summed (start > 0).
fn attend_scores(pos: u32, g: u32, ng: u32, lid: u32) {
  let kv = p.kv_heads * p.dh;
  let len = pos + 1u;
  for (var i = g * WG + lid; i < p.heads * len; i += ng * WG) {
    let h = i / len;
    let s = i % len;
    let kg = h / (p.heads / p.kv_heads);
    var dot = 0.0;
    for (var d = 0u; d < p.dh; d++) { dot += work[p.q_at + h * p.dh + d] * kc[s * kv + kg * p.dh + d]; }
    work[p.scores_at + h * p.max_len + s] = dot * p.scale;
  }
}

fn attend_softmax(pos: u32, g: u32, ng: u32, lid: u32) {
  let len = pos + 1u;
  for (var h = g; h < p.heads; h += ng) {
    let row = p.scores_at + h * p.max_len;
    var m = -3.0e38;
    for (var s = lid; s < len; s += WG) { m = max(m, work[row + s]); }
    let total = exp_scores(row, len, max1(lid, m), lid);
    for (var s = lid; s < len; s += WG) { work[row + s] = work[row + s] / total; }
  }
}

fn attend_mix(g: u32, ng: u32, lid: u32) {
  let kv = p.kv_heads * p.dh;
  for (var i = g * WG + lid; i < p.heads * p.dh; i += ng * WG) {
    let h = i / p.dh;
    let d = i % p.dh;
    let kg = h / (p.heads / p.kv_heads);
    let row = p.scores_at + h * p.max_len;
    var acc = select(0.0, work[p.att_at + i], p.start > 0u);
    for (var s = p.start; s < p.stop; s++) { acc += work[row + s] * vc[s * kv + kg * p.dh + d]; }
    work[p.att_at + i] = acc;
  }
}

// The one-workgroup schedule's attention with LANE_ROWS: an invocation per (head, position)
// score, one barrier, then an invocation per (head, feature) that softmaxes its head's scores.
fn scores_lanes(pos: u32, lid: u32) {
  let kv = p.kv_heads * p.dh;
  let len = pos + 1u;
  for (var i = lid; i < p.heads * len; i += WG) {
    let h = i / len;
    let s = i % len;
    let g = h / (p.heads / p.kv_heads);
    var dot = 0.0;
    for (var d = 0u; d < p.dh; d++) { dot += work[p.q_at + h * p.dh + d] * kc[s * kv + g * p.dh + d]; }
    work[p.scores_at + h * p.max_len + s] = dot * p.scale;
  }
}

fn mix_lanes(pos: u32, lid: u32) {
  let kv = p.kv_heads * p.dh;
  let len = pos + 1u;
  for (var i = lid; i < p.heads * p.dh; i += WG) {
    let h = i / p.dh;
    let d = i % p.dh;
    let g = h / (p.heads / p.kv_heads);
    let row = p.scores_at + h * p.max_len;
    var m = -3.0e38;
    for (var s = 0u; s < len; s++) { m = max(m, work[row + s]); }
    var z = 0.0;
    var acc = 0.0;
    for (var s = 0u; s < len; s++) {
      let w = exp(work[row + s] - m);
      z += w;
      acc += w * vc[s * kv + g * p.dh + d];
    }
    work[p.att_at + i] = acc / z;
  }
}

fn part_out(r: u32, c0: u32, step: u32) -> f32 {
  var acc = 0.0;
  for (var c = c0; c < p.dim; c += step) { acc += wo[r * p.dim + c] * work[p.att_at + c]; }
  return acc;
}

fn phase_out(g: u32, ng: u32, lid: u32) {
  if (LANE_ROWS == 1u) {
    for (var r = g * WG + lid; r < p.dim; r += ng * WG) { x[r] += part_out(r, 0u, 1u); }
    return;
  }
  for (var r = g; r < p.dim; r += ng) {
    let d = sum2(lid, vec2f(part_out(r, lid, WG), 0.0)).x;
    if (lid == 0u) { x[r] += d; }
  }
}

// Gate and up rows r against x·n2.
fn part_up(r: u32, c0: u32, step: u32) -> vec2f {
  var acc = vec2f(0.0);
  for (var c = c0; c < p.dim; c += step) {
    acc += vec2f(wg[r * p.dim + c], wu[r * p.dim + c]) * (x[c] * n2[c]);
  }
  return acc;
}

fn store_up(r: u32, d: vec2f) {
  work[p.hid_at + r] = d.x / (1.0 + exp(-d.x)) * d.y;
}

fn phase_up(g: u32, ng: u32, lid: u32) {
  let inv = inv_rms(lid);
  if (LANE_ROWS == 1u) {
    for (var r = g * WG + lid; r < p.hidden; r += ng * WG) { store_up(r, part_up(r, 0u, 1u) * inv); }
    return;
  }
  for (var r = g; r < p.hidden; r += ng) {
    let d = sum2(lid, part_up(r, lid, WG)) * inv;
    if (lid == 0u) { store_up(r, d); }
  }
}

fn part_down(r: u32, c0: u32, step: u32) -> f32 {
  var acc = 0.0;
  for (var c = c0; c < p.hidden; c += step) { acc += wd[r * p.hidden + c] * work[p.hid_at + c]; }
  return acc;
}

fn phase_down(g: u32, ng: u32, lid: u32) {
  if (LANE_ROWS == 1u) {
    for (var r = g * WG + lid; r < p.dim; r += ng * WG) { x[r] += part_down(r, 0u, 1u); }
    return;
  }
  for (var r = g; r < p.dim; r += ng) {
    let d = sum2(lid, vec2f(part_down(r, lid, WG), 0.0)).x;
    if (lid == 0u) { x[r] += d; }
  }
}

// Between phases of the one-workgroup schedule: the next phase reads what others wrote.
fn settle() {
  storageBarrier();
  workgroupBarrier();
}

// A whole layer in one workgroup, phases separated by storage barriers.
fn run_layer(pos: u32, lid: u32) {
  phase_qkv(pos, 0u, 1u, lid);
  settle();
  if (LANE_ROWS == 1u) {
    scores_lanes(pos, lid);
    settle();
    mix_lanes(pos, lid);
  } else {
    phase_attend(pos, 0u, 1u, lid);
  }
  settle();
  phase_out(0u, 1u, lid);
  settle();
  phase_up(0u, 1u, lid);
  settle();
  phase_down(0u, 1u, lid);
}
