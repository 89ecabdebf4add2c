// The parameters of every batch-1 decoding kernel (decode_layer.wgsl, decode_sample.wgsl,
// decode_tokens.wgsl); each reads the fields it needs. Offsets into the work buffer (`*_at`) are
// in floats and multiples of 4; `stride` is the scores' row length and the packed caches' rows
// per layer (max_len rounded up to a multiple of 4); `*_off` are offsets in vec4s of the final
// norm, head and embedding in decode_tokens.wgsl's packed weights; [start, stop) the cached
// positions of one pass of decode_phases.wgsl's attend_mix.
struct Params {
  dim: u32,
  hidden: u32,
  heads: u32,
  kv_heads: u32,
  dh: u32,
  max_len: u32,
  stride: u32,
  layers: u32,
  vocab: u32,
  pos: u32,
  index: u32,
  count: u32,
  token: u32,
  eps: f32,
  scale: f32,
  temperature: f32,
  top_k: u32,
  seed: u32,
  q_at: u32,
  att_at: u32,
  hid_at: u32,
  xn_at: u32,
  scores_at: u32,
  logits_at: u32,
  nf_off: u32,
  head_off: u32,
  embed_off: u32,
  start: u32,
  stop: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
