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

@compute @workgroup_size(WG)
fn layer(@builtin(local_invocation_index) lid: u32) {
  run_layer(p.pos, lid);
}

@compute @workgroup_size(WG)
fn qkv(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  phase_qkv(p.pos, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  phase_attend(p.pos, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn attend_scores_long(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  attend_scores(p.pos, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn attend_softmax_long(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
                       @builtin(local_invocation_index) lid: u32) {
  attend_softmax(p.pos, g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn attend_mix_long(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  attend_mix(g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn out_proj(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  phase_out(g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn ffn_up(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  phase_up(g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn ffn_down(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  phase_down(g.x, ng.x, lid);
}
