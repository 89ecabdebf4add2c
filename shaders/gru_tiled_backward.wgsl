// Fused GRU recurrence, backward, tiled for llvmpipe (the maths of gru_backward.wgsl, the layout
// of gru_tiled_forward.wgsl): an invocation owns UNITS hidden units of the SEQ sequences of its
// workgroup. Per step (the host runs the passes from the last step down) it turns the gradient
// reaching its units' states into their gate gradients (dgx, dgh), then adds W_hhᵀ · dgh for its
// units, a product over the workgroup's gate gradients formed one of two ways (BackwardProduct in
// gru_tiled.ts). dh carries between passes in `carry` [B, H] (rows in the order of `seqs`).
// gru.ts prepends the constants of the forward and the tile's functions, unrolled over its units
// and sequences (own gradients dh_*, gate gradients g{r,z,n}_*): load_carry / store_carry(b0, j0)
// move dh from and to `carry`, grad_update(tt, b0, j0) computes step tt's gate gradients and
// dh ⊙ z, back_step(live, j0) adds the product to dh (with the barriers it needs; no product
// where no sequence of the group is live), store_bias_grads(group, j0) adds the tile's bias
// gradients (summed over its sequences and the pass's steps) to its workgroup's row of dbias
// [groups, 6H]: b_ih's r, z, n, then b_hh's.
// dgx, dgh, work and hprev are in the rows of `seqs` (see gru_tiled_forward.wgsl); only live steps
// are written (the host zeroes a padded dgx). w_hh (binding 1) is declared with those functions:
// a uniform buffer where it fits one (llvmpipe loads a uniform without a storage buffer's bounds
// checks, so the product's weight loads cost ~40% less), else a storage buffer.
struct Params { batch: u32, steps: u32, hidden: u32, t0: u32, t1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> seqs: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> work: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> hprev: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dhs: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> carry: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dgx: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dgh: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> dbias: array<vec4<f32>>;

const SEQ4: u32 = SEQ / 4u;
var<private> len: array<u32, SEQ>;
var<private> gx_at: array<u32, SEQ>;
var<private> saved_at: array<u32, SEQ>;
var<private> state_at: array<u32, SEQ>;

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b0 = wid.x * SEQ;
  let j0 = lid.x * UNITS;
  // The group's longest sequence: past it every gate gradient is zero, the products are skipped.
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
  load_carry(b0, j0);
  for (var t = p.t1; t > p.t0; t--) {
    let tt = t - 1u;
    grad_update(tt, b0, j0);
    back_step(tt < longest, j0);
  }
  store_carry(b0, j0);
  store_bias_grads(wid.x, j0);
}
