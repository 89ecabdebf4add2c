// Fused GRU recurrence, forward, tiled for llvmpipe (the maths and saved tensors of
// gru_forward.wgsl). llvmpipe runs 8 invocations as one SIMD vector and gathers every storage and
// workgroup load lane by lane, so loads bound the speed, and an array indexed in a loop lives in
// memory: here an invocation owns UNITS hidden units (their three gates) of all SEQ sequences of
// its workgroup, each step is a small matmul [SEQ, H] · W_hhᵀ whose every loaded weight vec4 (four
// k of one gate row) serves SEQ sequences and every loaded state vec4 (four sequences at one k)
// 3·UNITS outputs, and the tile's accumulators and states are named variables (registers).
// The states are shared in workgroup memory as h_sh[k · SEQ4 + s4] = unit k of sequences
// 4·s4 .. +3. Every tensor is read and written as vec4 along the hidden units: H % 4 = 0 (gru.ts
// pads other sizes), and UNITS % 4 = 0.
// gru.ts prepends SEQ (a multiple of 4), UNITS, LANES = ⌈H / UNITS⌉, H and H4 = H / 4, W_hh's
// binding and the tile's functions, unrolled over its units and sequences (private accumulators
// acc_*, own states hown_*, biases bias_*): load_bias(j0) loads the tile's biases, product_init()
// sets the accumulators to b_hh (+ b_ih for r and z), product_k4(k4, j0) adds four k of W_hh·h,
// step_update(t, b0, j0) applies the gates, writes hs, hprev and work and updates the own states,
// store_states(t, b0, j0) writes the own states to hs, load_state(j0) and share_state(j0) move
// them from and to h_sh.
// The input projection gx = x·W_ihᵀ comes without its bias (b_ih is added here) and, as the saved
// hprev and work, in the rows `seqs` gives: seqs[i] = (length, first gx row, first saved row,
// row of hs), longest first (see gru_forward.wgsl), so padded steps can be left out of gx (packed
// sequences) and are always left out of the saved tensors, which the weight gradients' matmuls
// then reduce over valid steps only.
struct Params { batch: u32, steps: u32, hidden: u32, t0: u32, t1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gx: array<vec4<f32>>;
// Binding 2, w_hh, comes with the functions: a uniform array where it fits (see gru_tiled.ts).
@group(0) @binding(3) var<storage, read> b_ih: array<f32>;
@group(0) @binding(4) var<storage, read> b_hh: array<f32>;
@group(0) @binding(5) var<storage, read> seqs: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> hs: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> work: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> hprev: array<vec4<f32>>;

const SEQ4: u32 = SEQ / 4u;
var<workgroup> h_sh: array<vec4<f32>, H * SEQ4>;
// The lengths of the workgroup's sequences (zero past the batch) and their first rows.
var<private> len: array<u32, SEQ>;
var<private> gx_at: array<u32, SEQ>;
var<private> saved_at: array<u32, SEQ>;
var<private> state_at: array<u32, SEQ>;
// Where the group's steps end (its longest sequence, within the pass), for every invocation.
var<workgroup> live_end_sh: u32;

fn stable_sigmoid(v: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= vec4<f32>(0.0));
}

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b0 = wid.x * SEQ;
  let j0 = lid.x * UNITS;
  // The group's longest sequence: past it no state changes.
  var longest = 0u;
  for (var s = 0u; s < SEQ; s++) {
    let b = b0 + s;
    let q = seqs[min(b, p.batch - 1u)];
    len[s] = select(0u, q.x, b < p.batch);
    gx_at[s] = q.y;
    saved_at[s] = q.z;
    state_at[s] = q.w;
    longest = max(longest, len[s]);
  }
  // The states before t0 (zero at the start).
  for (var i = lid.x; i < H * SEQ4; i += LANES) {
    let k = i / SEQ4;
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
      let s = 4u * (i % SEQ4) + c;
      if (p.t0 > 0u && b0 + s < p.batch) {
        v[c] = hs[((state_at[s] * p.steps + p.t0 - 1u) * H + k) / 4u][k % 4u];
      }
    }
    h_sh[i] = v;
  }
  if (lid.x == 0u) { live_end_sh = clamp(longest, p.t0, p.t1); }
  // Its barrier also makes h_sh's states visible to every invocation.
  let live_end = workgroupUniformLoad(&live_end_sh);
  load_state(j0);
  load_bias(j0);
  for (var t = p.t0; t < live_end; t++) {
    product_init();
    for (var k4 = 0u; k4 < H4; k4++) { product_k4(k4, j0); }
    step_update(t, b0, j0);
    workgroupBarrier();
    share_state(j0);
    workgroupBarrier();
  }
  // Past the longest sequence the states stay: hs repeats them, with no products or barriers.
  for (var t = live_end; t < p.t1; t++) { store_states(t, b0, j0); }
}
