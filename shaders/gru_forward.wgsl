// Fused GRU recurrence, forward (PyTorch's gate order r, z, n). The input projection
// gx = x·W_ihᵀ + b_ih [B, T, 3H] is a matmul done before; this kernel runs the time steps
// [t0, t1) of one batch row per workgroup, with the hidden state in workgroup memory:
//   r = σ(gx_r + W_hr·h + b_hr), z = σ(gx_z + W_hz·h + b_hz),
//   n = tanh(gx_n + r ⊙ (W_hn·h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
// Past a row's length the state is carried unchanged, so hs[b, T-1] is its last valid state.
// The host splits the steps into passes because llvmpipe ends an invocation's loops after
// 65,535 iterations in all; a pass reloads the state from hs[b, t0-1].
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
// Largest hidden size: 8 units per thread of a 64-thread workgroup.
const MAX_HIDDEN: u32 = 512u;
const UNITS: u32 = 8u;

var<workgroup> h_sh: array<f32, MAX_HIDDEN>;

fn stable_sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wid.x;
  let H = p.hidden;
  let len = u32(max(lengths[b], 0));
  for (var j = lid.x; j < H; j += WG) {
    h_sh[j] = select(0.0, hs[(b * p.steps + p.t0 - 1u) * H + j], p.t0 > 0u);
  }
  workgroupBarrier();
  var h_new: array<f32, UNITS>;
  for (var t = p.t0; t < p.t1; t++) {
    let row = b * p.steps + t;
    let live = t < len;
    var u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      let h_old = h_sh[j];
      hprev[row * H + j] = h_old;
      if (live) {
        var ar = b_hh[j];
        var az = b_hh[H + j];
        var an = b_hh[2u * H + j];
        let wr = j * H;
        let wz = (H + j) * H;
        let wn = (2u * H + j) * H;
        for (var k = 0u; k < H; k++) {
          let hk = h_sh[k];
          ar += w_hh[wr + k] * hk;
          az += w_hh[wz + k] * hk;
          an += w_hh[wn + k] * hk;
        }
        let g = row * 3u * H;
        let r = stable_sigmoid(gx[g + j] + ar);
        let z = stable_sigmoid(gx[g + H + j] + az);
        let n = tanh(gx[g + 2u * H + j] + r * an);
        let w = row * 4u * H;
        work[w + j] = r;
        work[w + H + j] = z;
        work[w + 2u * H + j] = n;
        work[w + 3u * H + j] = an;
        h_new[u] = (1.0 - z) * n + z * h_old;
      } else {
        h_new[u] = h_old;
      }
      u++;
    }
    workgroupBarrier();
    u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      h_sh[j] = h_new[u];
      hs[row * H + j] = h_new[u];
      u++;
    }
    workgroupBarrier();
  }
}
