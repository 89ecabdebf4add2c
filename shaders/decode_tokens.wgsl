// Batch-1 decoding of `count` tokens in one dispatch and one workgroup: for each token every layer
// (decode_phases.wgsl), then head and sampler (decode_pick.wgsl), the sampled token's embedding
// becoming the next input, with no dispatch and no readback in between. For llvmpipe, where a
// dispatch costs a round trip through its thread pool; a GPU keeps the per-layer dispatches of
// decode_layer.wgsl. Weights are packed in one buffer: per layer n1, Wq, Wk, Wv, Wo, n2, Wg, Wu,
// Wd, then the final norm, head and embedding at nf_at, head_at, embed_at; caches in another,
// [layers][k, v][max_len][kv_heads · dh]. llvmpipe counts the iterations of all of an
// invocation's loops together: `count` keeps them within budget (src/models/decode.ts).
struct Params {
  dim: u32,
  hidden: u32,
  heads: u32,
  kv_heads: u32,
  dh: u32,
  max_len: u32,
  pos: u32,
  eps: f32,
  scale: f32,
  q_at: u32,
  att_at: u32,
  hid_at: u32,
  scores_at: u32,
  vocab: u32,
  logits_at: u32,
  temperature: f32,
  top_k: u32,
  seed: u32,
  index: u32,
  count: u32,
  layers: u32,
  nf_at: u32,
  head_at: u32,
  embed_at: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read> rot: array<f32>;
@group(0) @binding(4) var<storage, read> wts: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> kv: array<f32>;
@group(0) @binding(6) var<storage, read_write> ids: array<u32>;

override LANE_ROWS: u32 = 1u;
// 1 when dim and hidden are multiples of 4: every packed tensor then starts on a vec4.
override VEC4: u32 = 0u;
const WG: u32 = 64u;

// Where layer l's tensors start in wts, and the offsets of its matrices after n1.
fn layer_at(l: u32) -> u32 {
  let kvw = p.kv_heads * p.dh;
  return l * (2u * p.dim + 2u * p.dim * p.dim + 2u * kvw * p.dim + 3u * p.hidden * p.dim);
}
fn q_off() -> u32 { return p.dim; }
fn k_off() -> u32 { return q_off() + p.dim * p.dim; }
fn v_off() -> u32 { return k_off() + p.kv_heads * p.dh * p.dim; }
fn o_off() -> u32 { return v_off() + p.kv_heads * p.dh * p.dim; }
fn n2_off() -> u32 { return o_off() + p.dim * p.dim; }
fn g_off() -> u32 { return n2_off() + p.dim; }
fn u_off() -> u32 { return g_off() + p.hidden * p.dim; }
fn d_off() -> u32 { return u_off() + p.hidden * p.dim; }

fn wf(i: u32) -> f32 { return wts[i >> 2u][i & 3u]; }
fn w_n1(l: u32, i: u32) -> f32 { return wf(layer_at(l) + i); }
fn w_q(l: u32, i: u32) -> f32 { return wf(layer_at(l) + q_off() + i); }
fn w_k(l: u32, i: u32) -> f32 { return wf(layer_at(l) + k_off() + i); }
fn w_v(l: u32, i: u32) -> f32 { return wf(layer_at(l) + v_off() + i); }
fn w_o(l: u32, i: u32) -> f32 { return wf(layer_at(l) + o_off() + i); }
fn w_n2(l: u32, i: u32) -> f32 { return wf(layer_at(l) + n2_off() + i); }
fn w_g(l: u32, i: u32) -> f32 { return wf(layer_at(l) + g_off() + i); }
fn w_u(l: u32, i: u32) -> f32 { return wf(layer_at(l) + u_off() + i); }
fn w_d(l: u32, i: u32) -> f32 { return wf(layer_at(l) + d_off() + i); }
fn w_n1_4(l: u32, i: u32) -> vec4f { return wts[layer_at(l) / 4u + i]; }
fn w_q4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + q_off()) / 4u + i]; }
fn w_k4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + k_off()) / 4u + i]; }
fn w_v4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + v_off()) / 4u + i]; }
fn w_o4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + o_off()) / 4u + i]; }
fn w_n2_4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + n2_off()) / 4u + i]; }
fn w_g4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + g_off()) / 4u + i]; }
fn w_u4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + u_off()) / 4u + i]; }
fn w_d4(l: u32, i: u32) -> vec4f { return wts[(layer_at(l) + d_off()) / 4u + i]; }
fn cache_at(l: u32, which: u32) -> u32 {
  return (2u * l + which) * p.max_len * p.kv_heads * p.dh;
}
fn k_get(l: u32, i: u32) -> f32 { return kv[cache_at(l, 0u) + i]; }
fn v_get(l: u32, i: u32) -> f32 { return kv[cache_at(l, 1u) + i]; }
fn k_put(l: u32, i: u32, v: f32) { kv[cache_at(l, 0u) + i] = v; }
fn v_put(l: u32, i: u32, v: f32) { kv[cache_at(l, 1u) + i] = v; }
fn w_nf(i: u32) -> f32 { return wf(p.nf_at + i); }
fn w_head(i: u32) -> f32 { return wf(p.head_at + i); }
fn w_embed(i: u32) -> f32 { return wf(p.embed_at + i); }
fn w_nf4(i: u32) -> vec4f { return wts[p.nf_at / 4u + i]; }
fn w_head4(i: u32) -> vec4f { return wts[p.head_at / 4u + i]; }

@compute @workgroup_size(WG)
fn tokens(@builtin(local_invocation_index) lid: u32) {
  for (var t = 0u; t < p.count; t++) {
    for (var l = 0u; l < p.layers; l++) {
      run_layer(l, p.pos + t, lid);
      settle();
    }
    phase_head(0u, 1u, lid);
    settle();
    phase_sample(lid, p.index + t);
    settle();
  }
}
