// Batch-1 decoding, one layer per dispatch: the phases of decode_phases.wgsl over this layer's
// own weight and cache tensors. `layer` runs the five phases in one workgroup with storage
// barriers between them (one dispatch per layer); the five phase entry points spread a phase's
// units (rows, row pairs or heads) over the workgroups of their own dispatch.
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
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;
@group(0) @binding(5) var<storage, read> rot: array<f32>;
@group(0) @binding(6) var<storage, read> n1: array<f32>;
@group(0) @binding(7) var<storage, read> wq: array<f32>;
@group(0) @binding(8) var<storage, read> wk: array<f32>;
@group(0) @binding(9) var<storage, read> wv: array<f32>;
@group(0) @binding(10) var<storage, read> wo: array<f32>;
@group(0) @binding(11) var<storage, read> n2: array<f32>;
@group(0) @binding(12) var<storage, read> wg: array<f32>;
@group(0) @binding(13) var<storage, read> wu: array<f32>;
@group(0) @binding(14) var<storage, read> wd: array<f32>;

override LANE_ROWS: u32 = 1u;
override VEC4: u32 = 0u;
const WG: u32 = 64u;


fn w_n1(l: u32, i: u32) -> f32 { return n1[i]; }
fn w_q(l: u32, i: u32) -> f32 { return wq[i]; }
fn w_k(l: u32, i: u32) -> f32 { return wk[i]; }
fn w_v(l: u32, i: u32) -> f32 { return wv[i]; }
fn w_o(l: u32, i: u32) -> f32 { return wo[i]; }
fn w_n2(l: u32, i: u32) -> f32 { return n2[i]; }
fn w_g(l: u32, i: u32) -> f32 { return wg[i]; }
fn w_u(l: u32, i: u32) -> f32 { return wu[i]; }
fn w_d(l: u32, i: u32) -> f32 { return wd[i]; }
// Four at a time (VEC4 stays 0 here: separate bindings gain nothing from it).
fn w_n1_4(l: u32, i: u32) -> vec4f { return vec4f(n1[4u * i], n1[4u * i + 1u], n1[4u * i + 2u], n1[4u * i + 3u]); }
fn w_q4(l: u32, i: u32) -> vec4f { return vec4f(wq[4u * i], wq[4u * i + 1u], wq[4u * i + 2u], wq[4u * i + 3u]); }
fn w_k4(l: u32, i: u32) -> vec4f { return vec4f(wk[4u * i], wk[4u * i + 1u], wk[4u * i + 2u], wk[4u * i + 3u]); }
fn w_v4(l: u32, i: u32) -> vec4f { return vec4f(wv[4u * i], wv[4u * i + 1u], wv[4u * i + 2u], wv[4u * i + 3u]); }
fn w_o4(l: u32, i: u32) -> vec4f { return vec4f(wo[4u * i], wo[4u * i + 1u], wo[4u * i + 2u], wo[4u * i + 3u]); }
fn w_n2_4(l: u32, i: u32) -> vec4f { return vec4f(n2[4u * i], n2[4u * i + 1u], n2[4u * i + 2u], n2[4u * i + 3u]); }
fn w_g4(l: u32, i: u32) -> vec4f { return vec4f(wg[4u * i], wg[4u * i + 1u], wg[4u * i + 2u], wg[4u * i + 3u]); }
fn w_u4(l: u32, i: u32) -> vec4f { return vec4f(wu[4u * i], wu[4u * i + 1u], wu[4u * i + 2u], wu[4u * i + 3u]); }
fn w_d4(l: u32, i: u32) -> vec4f { return vec4f(wd[4u * i], wd[4u * i + 1u], wd[4u * i + 2u], wd[4u * i + 3u]); }
fn k_get(l: u32, i: u32) -> f32 { return kc[i]; }
fn v_get(l: u32, i: u32) -> f32 { return vc[i]; }
fn k_put(l: u32, i: u32, v: f32) { kc[i] = v; }
fn v_put(l: u32, i: u32, v: f32) { vc[i] = v; }

@compute @workgroup_size(WG)
fn layer(@builtin(local_invocation_index) lid: u32) {
  run_layer(0u, p.pos, lid);
}

@compute @workgroup_size(WG)
fn qkv(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  phase_qkv(0u, p.pos, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  phase_attend(0u, p.pos, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn out_proj(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  phase_out(0u, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn ffn_up(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  phase_up(0u, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn ffn_down(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  phase_down(0u, g.x, ng.x, lid);
}
