// Batch-1 decoding, one layer per dispatch: the phases of decode_phases.wgsl over this layer's
// own weight and cache tensors. `layer` runs the five phases in one workgroup with storage
// barriers between them (one dispatch per layer); the five phase entry points spread a phase's
// units (rows, row pairs or heads) over the workgroups of their own dispatch.
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
