// Fused GRU recurrence, forward (PyTorch's gate order r, z, n). The input projection
// gx = x·W_ihᵀ + b_ih [B, T, 3H] is a matmul done before; this kernel runs the time steps
// [t0, t1) of four sequences per workgroup, with their hidden states in workgroup memory as one
// vec4 per unit (a weight read serves the four sequences: llvmpipe pays for every load):
//   r = σ(gx_r + W_hr·h + b_hr), z = σ(gx_z + W_hz·h + b_hz),
//   n = tanh(gx_n + r ⊙ (W_hn·h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
// Past a sequence's length its state is carried unchanged, so hs[b, T-1] is its last valid one.
// The host splits the steps into passes because llvmpipe ends an invocation's loops after
// 65,535 iterations in all; a pass reloads the states from hs[b, t0-1].
// Saved for backward: work[b, t] = (r, z, n, W_hn·h + b_hn) and hprev[b, t] = h before step t.
struct Params { batch: u32, steps: u32, hidden: u32, t0: u32, t1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> lengths: array<i32>;
@group(0) @binding(5) var<storage, read_write> hs: array<f32>;
@group(0) @binding(6) var<storage, read_write> work: array<f32>;
@group(0) @binding(7) var<storage, read_write> hprev: array<f32>;

const WG: u32 = 64u;
// Sequences per workgroup: the lanes of a vec4.
const SEQ: u32 = 4u;
// Largest hidden size: 4 units per thread of a 64-thread workgroup.
const MAX_HIDDEN: u32 = 256u;
const UNITS: u32 = 4u;

// h_sh[j][s]: unit j of sequence s of this workgroup.
var<workgroup> h_sh: array<vec4<f32>, MAX_HIDDEN>;

fn stable_sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// The length of sequence s of workgroup g; 0 past the batch.
fn length_of(b: u32) -> u32 {
  return select(0u, u32(max(lengths[min(b, p.batch - 1u)], 0)), b < p.batch);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b0 = wid.x * SEQ;
  let H = p.hidden;
  var len: array<u32, SEQ>;
  // The group's longest sequence: past it no state changes, and the products are skipped.
  var longest = 0u;
  for (var s = 0u; s < SEQ; s++) {
    len[s] = length_of(b0 + s);
    longest = max(longest, len[s]);
  }
  for (var j = lid.x; j < H; j += WG) {
    var h = vec4<f32>(0.0);
    for (var s = 0u; s < SEQ; s++) {
      if (p.t0 > 0u && b0 + s < p.batch) {
        h[s] = hs[((b0 + s) * p.steps + p.t0 - 1u) * H + j];
      }
    }
    h_sh[j] = h;
  }
  workgroupBarrier();
  var h_new: array<vec4<f32>, UNITS>;
  for (var t = p.t0; t < p.t1; t++) {
    var u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      var ar = vec4<f32>(b_hh[j]);
      var az = vec4<f32>(b_hh[H + j]);
      var an = vec4<f32>(b_hh[2u * H + j]);
      let wr = j * H;
      let wz = (H + j) * H;
      let wn = (2u * H + j) * H;
      for (var k = 0u; k < select(0u, H, t < longest); k++) {
        let hk = h_sh[k];
        ar += w_hh[wr + k] * hk;
        az += w_hh[wz + k] * hk;
        an += w_hh[wn + k] * hk;
      }
      var next = h_sh[j];
      for (var s = 0u; s < SEQ; s++) {
        let b = b0 + s;
        if (b >= p.batch) { continue; }
        let row = b * p.steps + t;
        let h_old = next[s];
        hprev[row * H + j] = h_old;
        if (t < len[s]) {
          let g = row * 3u * H;
          let r = stable_sigmoid(gx[g + j] + ar[s]);
          let z = stable_sigmoid(gx[g + H + j] + az[s]);
          let n = tanh(gx[g + 2u * H + j] + r * an[s]);
          let w = row * 4u * H;
          work[w + j] = r;
          work[w + H + j] = z;
          work[w + 2u * H + j] = n;
          work[w + 3u * H + j] = an[s];
          next[s] = (1.0 - z) * n + z * h_old;
        }
        hs[row * H + j] = next[s];
      }
      h_new[u] = next;
      u++;
    }
    workgroupBarrier();
    u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      h_sh[j] = h_new[u];
      u++;
    }
    workgroupBarrier();
  }
}
