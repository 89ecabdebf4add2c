// Batch-1 decoding of `count` tokens in one dispatch and one workgroup, shaped for llvmpipe: for
// each token every layer, then head and sampler (decode_pick.wgsl), the sampled token's embedding
// becoming the next input, with no dispatch and no readback in between (a dispatch costs a round
// trip through llvmpipe's thread pool, about half a millisecond). A GPU keeps the per-layer
// dispatches of decode_layer.wgsl.
//
// llvmpipe runs a workgroup as SIMD chunks of 8 invocations on one thread, and loads a storage
// address that differs between invocations one invocation at a time (a loop over the chunk with a
// bounds check per component); a vec4 costs hardly more than a float. So every load here is a
// vec4, and an invocation computes 8 rows of a matrix at once (reading each input vec4 once for
// its 8 weight rows), or 4 positions of two heads' scores, or 4 features of their values. Widths
// (dim, hidden, head width) are multiples of 4.
//
// Weights are packed in one buffer of vec4s: per layer n1, Wq, Wk, Wv, Wo, n2, Wg, Wu, Wd (each
// [out, in] row-major, so [Wq; Wk; Wv] is one stacked matrix), then the final norm, head and
// embedding at nf_off, head_off, embed_off. The caches are [layers][k, v][stride][kv_heads · dh].
// In work: q, att, hid and xn (a normed input) at q_at, att_at, hid_at, xn_at, scores at
// scores_at ([heads][stride]), logits at logits_at. llvmpipe counts the iterations of all of an
// invocation's loops together: `count` keeps them within budget (src/models/decode.ts).
@group(0) @binding(1) var<storage, read_write> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> work: array<vec4f>;
@group(0) @binding(3) var<storage, read> rot: array<vec4f>;
@group(0) @binding(4) var<storage, read> wts: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> kv: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> ids: array<u32>;

// TOKENS_WG in src/models/decode.ts: fewer chunks of 8, fewer switches at each barrier.
const WG: u32 = 32u;

fn d4() -> u32 { return p.dim / 4u; }
fn h4() -> u32 { return p.hidden / 4u; }
fn dh4() -> u32 { return p.dh / 4u; }
fn kv4() -> u32 { return p.kv_heads * p.dh / 4u; }

// Where layer l's tensors start in wts, and its matrices after n1 (vec4s).
fn layer_at(l: u32) -> u32 {
  return l * (2u * d4() + (2u * p.dim + 2u * p.kv_heads * p.dh + 3u * p.hidden) * d4());
}
fn qkv_at(l: u32) -> u32 { return layer_at(l) + d4(); }
fn o_at(l: u32) -> u32 { return qkv_at(l) + (p.dim + 2u * p.kv_heads * p.dh) * d4(); }
fn n2_at(l: u32) -> u32 { return o_at(l) + p.dim * d4(); }
fn gate_at(l: u32) -> u32 { return n2_at(l) + d4(); }
fn up_at(l: u32) -> u32 { return gate_at(l) + p.hidden * d4(); }
fn down_at(l: u32) -> u32 { return up_at(l) + p.hidden * d4(); }
fn cache_at(l: u32, which: u32) -> u32 { return (2u * l + which) * p.stride * kv4(); }

// Rows 8g … 8g + 7 of the matrix at wts[w ..] with cols4 vec4s a row, times work[v ..]. Rows past
// the matrix read what follows it (or nothing): callers store only whole vec4s of real rows.
struct Rows8 {
  lo: vec4f,
  hi: vec4f,
}

fn rows8(w: u32, g: u32, cols4: u32, v: u32) -> Rows8 {
  let a = w + 8u * g * cols4;
  let b = a + 4u * cols4;
  var lo = vec4f(0.0);
  var hi = vec4f(0.0);
  for (var c = 0u; c < cols4; c++) {
    let u = work[v + c];
    lo += vec4f(
      dot(wts[a + c], u),
      dot(wts[a + cols4 + c], u),
      dot(wts[a + 2u * cols4 + c], u),
      dot(wts[a + 3u * cols4 + c], u),
    );
    hi += vec4f(
      dot(wts[b + c], u),
      dot(wts[b + cols4 + c], u),
      dot(wts[b + 2u * cols4 + c], u),
      dot(wts[b + 3u * cols4 + c], u),
    );
  }
  return Rows8(lo, hi);
}

// Groups of 8 rows covering quads groups of 4.
fn octs(quads: u32) -> u32 { return (quads + 1u) / 2u; }

// xn = rmsnorm(x) · the norm weights at wts[norm ..]: each invocation that writes part of xn sums
// x itself (the same addresses for all, and no barrier before the sum); the others skip it.
fn normed(norm: u32, lid: u32) {
  if (lid >= d4()) { return; }
  var s = 0.0;
  for (var c = 0u; c < d4(); c++) {
    let v = x[c];
    s += dot(v, v);
  }
  let inv = inverseSqrt(s / f32(p.dim) + p.eps);
  for (var c = lid; c < d4(); c += WG) { work[p.xn_at / 4u + c] = x[c] * inv * wts[norm + c]; }
}

// Rows r … r + 3 of [q; k; v]: q and k rotated (two adjacent pairs, whose (cos, sin) are one
// vec4 of the rotary table [positions, dh]), q to work, k and v to row pos of the caches.
fn store_qkv(l: u32, pos: u32, r: u32, y: vec4f) {
  let kvw = p.kv_heads * p.dh;
  if (r >= p.dim + kvw) {
    kv[cache_at(l, 1u) + (pos * kvw + r - p.dim - kvw) / 4u] = y;
    return;
  }
  let local = select(r - p.dim, r, r < p.dim);
  let cs = rot[(pos * p.dh + local % p.dh) / 4u];
  let z = vec4f(
    y.x * cs.x - y.y * cs.y,
    y.x * cs.y + y.y * cs.x,
    y.z * cs.z - y.w * cs.w,
    y.z * cs.w + y.w * cs.z,
  );
  if (r < p.dim) {
    work[p.q_at / 4u + local / 4u] = z;
  } else {
    kv[cache_at(l, 0u) + (pos * kvw + local) / 4u] = z;
  }
}

fn qkv(l: u32, pos: u32, lid: u32) {
  let quads = (p.dim + 2u * p.kv_heads * p.dh) / 4u;
  for (var g = lid; g < octs(quads); g += WG) {
    let y = rows8(qkv_at(l), g, d4(), p.xn_at / 4u);
    store_qkv(l, pos, 8u * g, y.lo);
    if (2u * g + 1u < quads) { store_qkv(l, pos, 8u * g + 4u, y.hi); }
  }
}

// Grouped-query attention reads each kv group's keys and values once for two of its heads: heads
// h and h2 = h + 1, or h2 = h for a group's odd head left over (computed and stored twice, alike).
fn head_pair(pair: u32) -> vec2u {
  let rep = p.heads / p.kv_heads;
  let pairs = (rep + 1u) / 2u;
  let first = (pair / pairs) * rep;
  let h = first + 2u * (pair % pairs);
  return vec2u(h, min(h + 1u, first + rep - 1u));
}

fn pair_count() -> u32 { return p.kv_heads * ((p.heads / p.kv_heads + 1u) / 2u); }

fn score_at(h: u32, s: u32) -> u32 { return (p.scores_at + h * p.stride + s) / 4u; }

// Scaled scores of a head pair against cached positions s … s + 3, an invocation per
// (pair, s / 4). Positions past pos read rows of the zeroed cache not written yet; `mix` masks
// them.
fn scores(l: u32, pos: u32, lid: u32) {
  let quads = pos / 4u + 1u;
  let group = p.heads / p.kv_heads;
  for (var i = lid; i < pair_count() * quads; i += WG) {
    let hh = head_pair(i / quads);
    let s = 4u * (i % quads);
    let k = cache_at(l, 0u) + s * kv4() + (hh.x / group) * dh4();
    var a = vec4f(0.0);
    var b = vec4f(0.0);
    for (var d = 0u; d < dh4(); d++) {
      let qa = work[p.q_at / 4u + hh.x * dh4() + d];
      let qb = work[p.q_at / 4u + hh.y * dh4() + d];
      let k0 = kv[k + d];
      let k1 = kv[k + kv4() + d];
      let k2 = kv[k + 2u * kv4() + d];
      let k3 = kv[k + 3u * kv4() + d];
      a += vec4f(dot(qa, k0), dot(qa, k1), dot(qa, k2), dot(qa, k3));
      b += vec4f(dot(qb, k0), dot(qb, k1), dot(qb, k2), dot(qb, k3));
    }
    work[score_at(hh.x, s)] = a * p.scale;
    work[score_at(hh.y, s)] = b * p.scale;
  }
}

// One head's softmax over the positions so far: running maximum, sum and weighted values.
struct Softmax {
  m: f32,
  z: f32,
  acc: vec4f,
}

// Folds positions s … s + 3 (scores sc, masked ones at −3e38, values v0 … v3) into a running
// softmax, rescaling what it holds when the maximum grows.
fn fold(r: Softmax, sc: vec4f, v0: vec4f, v1: vec4f, v2: vec4f, v3: vec4f) -> Softmax {
  let top = max(r.m, max(max(sc.x, sc.y), max(sc.z, sc.w)));
  let f = exp(r.m - top);
  let e = exp(sc - top);
  let acc = r.acc * f + e.x * v0 + e.y * v1 + e.z * v2 + e.w * v3;
  return Softmax(top, r.z * f + e.x + e.y + e.z + e.w, acc);
}

// att = softmax(scores) · v, an invocation per (head pair, 4 features), in one pass over the
// positions, 4 a step.
fn mix(l: u32, pos: u32, lid: u32) {
  let len = pos + 1u;
  let group = p.heads / p.kv_heads;
  for (var i = lid; i < pair_count() * dh4(); i += WG) {
    let hh = head_pair(i / dh4());
    let d = i % dh4();
    let v = cache_at(l, 1u) + (hh.x / group) * dh4() + d;
    var a = Softmax(-3.0e38, 0.0, vec4f(0.0));
    var b = a;
    for (var s = 0u; s < len; s += 4u) {
      let live = vec4u(s, s + 1u, s + 2u, s + 3u) < vec4u(len);
      let v0 = kv[v + s * kv4()];
      let v1 = kv[v + (s + 1u) * kv4()];
      let v2 = kv[v + (s + 2u) * kv4()];
      let v3 = kv[v + (s + 3u) * kv4()];
      a = fold(a, select(vec4f(-3.0e38), work[score_at(hh.x, s)], live), v0, v1, v2, v3);
      b = fold(b, select(vec4f(-3.0e38), work[score_at(hh.y, s)], live), v0, v1, v2, v3);
    }
    work[p.att_at / 4u + hh.x * dh4() + d] = a.acc / a.z;
    work[p.att_at / 4u + hh.y * dh4() + d] = b.acc / b.z;
  }
}

// x += W · work[v ..] for a [dim, 4·cols4] matrix W at wts[w ..] (o-proj, down-proj).
fn add_to_x(w: u32, cols4: u32, v: u32, lid: u32) {
  for (var g = lid; g < octs(d4()); g += WG) {
    let y = rows8(w, g, cols4, v);
    x[2u * g] += y.lo;
    if (2u * g + 1u < d4()) { x[2u * g + 1u] += y.hi; }
  }
}

fn silu_gate(a: vec4f, b: vec4f) -> vec4f { return a / (1.0 + exp(-a)) * b; }

fn ffn_up(l: u32, lid: u32) {
  let hid = p.hid_at / 4u;
  for (var g = lid; g < octs(h4()); g += WG) {
    let a = rows8(gate_at(l), g, d4(), p.xn_at / 4u);
    let b = rows8(up_at(l), g, d4(), p.xn_at / 4u);
    work[hid + 2u * g] = silu_gate(a.lo, b.lo);
    if (2u * g + 1u < h4()) { work[hid + 2u * g + 1u] = silu_gate(a.hi, b.hi); }
  }
}

// Logits in vec4s: rows past the vocabulary fill the logits' padding, which the sampler never
// reads.
fn head(lid: u32) {
  let quads = (p.vocab + 3u) / 4u;
  let logits = p.logits_at / 4u;
  for (var g = lid; g < octs(quads); g += WG) {
    let y = rows8(p.head_off, g, d4(), p.xn_at / 4u);
    work[logits + 2u * g] = y.lo;
    if (2u * g + 1u < quads) { work[logits + 2u * g + 1u] = y.hi; }
  }
}

// Between phases: the next phase reads what other invocations wrote.
fn settle() {
  storageBarrier();
  workgroupBarrier();
}

fn layer(l: u32, pos: u32, lid: u32) {
  normed(layer_at(l), lid);
  settle();
  qkv(l, pos, lid);
  settle();
  scores(l, pos, lid);
  settle();
  mix(l, pos, lid);
  settle();
  add_to_x(o_at(l), d4(), p.att_at / 4u, lid);
  settle();
  normed(n2_at(l), lid);
  settle();
  ffn_up(l, lid);
  settle();
  add_to_x(down_at(l), h4(), p.hid_at / 4u, lid);
  settle();
}

// decode_pick.wgsl's accessors.
fn logit(v: u32) -> f32 { return work[(p.logits_at + v) / 4u][v % 4u]; }

fn set_input(token: u32, lid: u32) {
  for (var c = lid; c < d4(); c += WG) { x[c] = wts[p.embed_off + token * d4() + c]; }
}

@compute @workgroup_size(WG)
fn tokens(@builtin(local_invocation_index) lid: u32) {
  for (var t = 0u; t < p.count; t++) {
    for (var l = 0u; l < p.layers; l++) { layer(l, p.pos + t, lid); }
    normed(p.nf_off, lid);
    settle();
    head(lid);
    settle();
    phase_sample(lid, p.index + t);
    settle();
  }
}
