// Head and sampler of batch-1 decoding as their own dispatches (decode_pick.wgsl's phases over
// the model's own tensors): head_sample in one workgroup, head spread over workgroups, sample in
// one; feed sets x = embed[token] for a token chosen on the host (teacher forcing, tests).
struct Params {
  dim: u32,
  vocab: u32,
  eps: f32,
  logits_at: u32,
  temperature: f32,
  top_k: u32,
  seed: u32,
  index: u32,
  token: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read> nf: array<f32>;
@group(0) @binding(4) var<storage, read> head_w: array<f32>;
@group(0) @binding(5) var<storage, read> embed: array<f32>;
@group(0) @binding(6) var<storage, read_write> ids: array<u32>;

override LANE_ROWS: u32 = 1u;
override VEC4: u32 = 0u;
const WG: u32 = 64u;

fn w_nf(i: u32) -> f32 { return nf[i]; }
fn w_head(i: u32) -> f32 { return head_w[i]; }
fn w_embed(i: u32) -> f32 { return embed[i]; }
fn w_nf4(i: u32) -> vec4f { return vec4f(nf[4u * i], nf[4u * i + 1u], nf[4u * i + 2u], nf[4u * i + 3u]); }
fn w_head4(i: u32) -> vec4f {
  return vec4f(head_w[4u * i], head_w[4u * i + 1u], head_w[4u * i + 2u], head_w[4u * i + 3u]);
}

@compute @workgroup_size(WG)
fn head_sample(@builtin(local_invocation_index) lid: u32) {
  phase_head(0u, 1u, lid);
  storageBarrier();
  workgroupBarrier();
  phase_sample(lid, p.index);
}

@compute @workgroup_size(WG)
fn head(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  phase_head(g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) lid: u32) {
  phase_sample(lid, p.index);
}

@compute @workgroup_size(WG)
fn feed(@builtin(local_invocation_index) lid: u32) {
  for (var c = lid; c < p.dim; c += WG) { x[c] = embed[p.token * p.dim + c]; }
}
