// The sampler at the end of a batch-1 decoding step, on the GPU so that only token ids are read
// back; composed after random.wgsl, decode_params.wgsl and a header (decode_sample.wgsl,
// decode_tokens.wgsl) that binds ids, declares WG, reads logit v through logit(v) and sets the
// next step's input to a token's embedding through set_input(token, lid):
//   token `index` = greedy argmax of the logits (temperature 0 or top_k 1), else a draw from
//   softmax(logits / temperature) over the top_k most likely tokens (top_k 0: all of them), with
//   the uniform rand_uniform(seed, STREAM, index) of random.wgsl; then ids[index] = token and
//   the input becomes embed[token].
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
    let l = logit(v);
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
    w += exp((logit(v) - top) / p.temperature);
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
      u -= exp((logit(v) - top) / p.temperature);
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
  set_input(token, lid);
}

