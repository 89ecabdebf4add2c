// The end of a batch-1 decoding step, on the GPU so that only token ids are read back; composed
// after random.wgsl and a header (decode_sample.wgsl, decode_tokens.wgsl) that binds x, work and
// ids, declares Params, WG, LANE_ROWS and VEC4, and reads w_nf(i), w_head(i), w_embed(i) (and
// w_nf4, w_head4 four at a time):
//   head:   logits = Whead · (rmsnorm(x)·nf) → work[logits_at..] (Whead [vocab, dim]).
//   sample: token `index` = greedy argmax of the logits (temperature 0 or top_k 1), else a draw
//           from softmax(logits / temperature) over the top_k most likely tokens (top_k 0: all of
//           them), with the uniform rand_uniform(seed, STREAM, index) of random.wgsl; then
//           ids[index] = token and x = embed[token], the next step's input.
// The draw mirrors src/models/sampling.ts's sampleToken: top-k candidates in descending order of
// logit (ties by id), all tokens in id order, weights exp((l − max) / temperature), the first
// candidate whose running weight passes u · total. Loops run at most max(dim, vocab, top_k)
// steps, below llvmpipe's cap for any vocabulary under 65,535 tokens per invocation's share.
// Must equal SAMPLE_STREAM in src/models/decode.ts.
const STREAM: u32 = 0x5A3Du;
const MAX_TOP_K: u32 = 256u;
var<workgroup> red1: array<f32, WG>;
var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;
var<workgroup> cand_v: array<f32, MAX_TOP_K>;
var<workgroup> cand_i: array<u32, MAX_TOP_K>;
var<workgroup> chosen: u32;

fn sum1(lid: u32, v: f32) -> f32 {
  red1[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red1[lid] += red1[lid + k]; }
    workgroupBarrier();
  }
  let total = red1[0];
  workgroupBarrier();
  return total;
}

fn part_head(r: u32, c0: u32, step: u32) -> f32 {
  var acc = 0.0;
  if (VEC4 == 1u && step == 1u) {
    for (var c4 = 0u; c4 < p.dim / 4u; c4++) {
      let c = 4u * c4;
      let v = vec4f(x[c], x[c + 1u], x[c + 2u], x[c + 3u]) * w_nf4(c4);
      acc += dot(w_head4(r * p.dim / 4u + c4), v);
    }
    return acc;
  }
  for (var c = c0; c < p.dim; c += step) { acc += w_head(r * p.dim + c) * (x[c] * w_nf(c)); }
  return acc;
}

fn phase_head(g: u32, ng: u32, lid: u32) {
  if (LANE_ROWS == 1u) {
    // Every invocation sums x itself: the same addresses for all, and no barrier.
    var s = 0.0;
    for (var c = 0u; c < p.dim; c++) { s += x[c] * x[c]; }
    let inv = inverseSqrt(s / f32(p.dim) + p.eps);
    for (var r = g * WG + lid; r < p.vocab; r += ng * WG) {
      work[p.logits_at + r] = part_head(r, 0u, 1u) * inv;
    }
    return;
  }
  var s = 0.0;
  for (var c = lid; c < p.dim; c += WG) { s += x[c] * x[c]; }
  let inv = inverseSqrt(sum1(lid, s) / f32(p.dim) + p.eps);
  for (var r = g; r < p.vocab; r += ng) {
    let d = sum1(lid, part_head(r, lid, WG)) * inv;
    if (lid == 0u) { work[p.logits_at + r] = d; }
  }
}

// (value, id) a comes before b: a larger logit, or an equal one with a smaller id.
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  return av > bv || (av == bv && ai < bi);
}

// The first token in (logit desc, id asc) order that comes after (after_v, after_i), or the
// very first when `any` is set: left in best_v[0], best_i[0] for every invocation.
fn next_best(lid: u32, any: bool, after_v: f32, after_i: u32) {
  var bv = -3.4e38;
  var bi = 0xFFFFFFFFu;
  for (var v = lid; v < p.vocab; v += WG) {
    let l = work[p.logits_at + v];
    if ((any || before(after_v, after_i, l, v)) && (bi == 0xFFFFFFFFu || before(l, v, bv, bi))) {
      bv = l;
      bi = v;
    }
  }
  best_v[lid] = bv;
  best_i[lid] = bi;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k && best_i[lid + k] != 0xFFFFFFFFu &&
        (best_i[lid] == 0xFFFFFFFFu || before(best_v[lid + k], best_i[lid + k], best_v[lid], best_i[lid]))) {
      best_v[lid] = best_v[lid + k];
      best_i[lid] = best_i[lid + k];
    }
    workgroupBarrier();
  }
}

// A draw among the top_k candidates (top_k ≥ 2, below the vocabulary).
fn draw_top_k(lid: u32, index: u32) {
  next_best(lid, true, 0.0, 0u);
  for (var j = 0u; j < p.top_k; j++) {
    if (j > 0u) { next_best(lid, false, cand_v[j - 1u], cand_i[j - 1u]); }
    if (lid == 0u) {
      cand_v[j] = best_v[0];
      cand_i[j] = best_i[0];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var total = 0.0;
    for (var j = 0u; j < p.top_k; j++) { total += exp((cand_v[j] - cand_v[0]) / p.temperature); }
    var u = rand_uniform(p.seed, STREAM, index) * total;
    chosen = cand_i[p.top_k - 1u];
    for (var j = 0u; j < p.top_k; j++) {
      u -= exp((cand_v[j] - cand_v[0]) / p.temperature);
      if (u < 0.0) {
        chosen = cand_i[j];
        break;
      }
    }
  }
}

// A draw among all tokens in id order: each invocation weighs a contiguous chunk, invocation 0
// finds the chunk the uniform falls in and walks it.
fn draw_all(lid: u32, index: u32) {
  next_best(lid, true, 0.0, 0u);
  let top = best_v[0];
  let chunk = (p.vocab + WG - 1u) / WG;
  var w = 0.0;
  for (var v = lid * chunk; v < min(p.vocab, (lid + 1u) * chunk); v++) {
    w += exp((work[p.logits_at + v] - top) / p.temperature);
  }
  red1[lid] = w;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var k = 0u; k < WG; k++) { total += red1[k]; }
    var u = rand_uniform(p.seed, STREAM, index) * total;
    chosen = p.vocab - 1u;
    var k = 0u;
    while (k + 1u < WG && u >= red1[k]) {
      u -= red1[k];
      k++;
    }
    for (var v = k * chunk; v < min(p.vocab, (k + 1u) * chunk); v++) {
      chosen = v;
      u -= exp((work[p.logits_at + v] - top) / p.temperature);
      if (u < 0.0) { break; }
    }
  }
}

fn phase_sample(lid: u32, index: u32) {
  if (p.temperature == 0.0 || p.top_k == 1u) {
    next_best(lid, true, 0.0, 0u);
    if (lid == 0u) { chosen = best_i[0]; }
  } else if (p.top_k == 0u || p.top_k >= p.vocab) {
    draw_all(lid, index);
  } else {
    draw_top_k(lid, index);
  }
  workgroupBarrier();
  let token = chosen;
  if (lid == 0u) { ids[index] = token; }
  for (var c = lid; c < p.dim; c += WG) { x[c] = w_embed(token * p.dim + c); }
}

