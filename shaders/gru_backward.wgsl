// Fused GRU recurrence, backward through the time steps [t0, t1) (the host runs the passes from
// the last step down), one batch row per workgroup. dh is the gradient reaching h_t: the
// output's dhs[b, t] plus what step t+1 sent back (kept in `carry` [B, H] between passes,
// zero before the first). For a live step, with the forward's saved r, z, n, hn = W_hn·h + b_hn:
//   dn = dh (1 − z), dz = dh (h − n), a_n = dn (1 − n²), dr = a_n · hn,
//   dgh = (dr r(1 − r), dz z(1 − z), a_n · r)   (gradient of W_hh·h + b_hh)
//   dgx = (dgh_r, dgh_z, a_n)                    (gradient of the input projection)
//   dh_prev = dh ⊙ z + W_hhᵀ · dgh.
// A padded step (t ≥ length) only passes dh on, with dgh = dgx = 0. The weight gradients are
// matmuls of dgh with the saved hprev, done by the host.
struct Params { batch: u32, steps: u32, hidden: u32, t0: u32, t1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w_hh: array<f32>;
@group(0) @binding(2) var<storage, read> lengths: array<i32>;
@group(0) @binding(3) var<storage, read> work: array<f32>;
@group(0) @binding(4) var<storage, read> hprev: array<f32>;
@group(0) @binding(5) var<storage, read> dhs: array<f32>;
@group(0) @binding(6) var<storage, read_write> carry: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgh: array<f32>;

const WG: u32 = 64u;
const MAX_HIDDEN: u32 = 512u;
const UNITS: u32 = 8u;

var<workgroup> dgh_sh: array<f32, 1536>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wid.x;
  let H = p.hidden;
  let len = u32(max(lengths[b], 0));
  var dh: array<f32, UNITS>;
  var u = 0u;
  for (var j = lid.x; j < H; j += WG) {
    dh[u] = carry[b * H + j];
    u++;
  }
  for (var t = p.t1; t > p.t0; t--) {
    let row = b * p.steps + t - 1u;
    let live = t - 1u < len;
    let g = row * 3u * H;
    u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      let d = dh[u] + dhs[row * H + j];
      dh[u] = d;
      if (live) {
        let w = row * 4u * H;
        let r = work[w + j];
        let z = work[w + H + j];
        let n = work[w + 2u * H + j];
        let hn = work[w + 3u * H + j];
        let dn = d * (1.0 - z);
        let dz = d * (hprev[row * H + j] - n);
        let an = dn * (1.0 - n * n);
        let ar = an * hn * r * (1.0 - r);
        let az = dz * z * (1.0 - z);
        dgh_sh[j] = ar;
        dgh_sh[H + j] = az;
        dgh_sh[2u * H + j] = an * r;
        dgx[g + j] = ar;
        dgx[g + H + j] = az;
        dgx[g + 2u * H + j] = an;
        dgh[g + j] = ar;
        dgh[g + H + j] = az;
        dgh[g + 2u * H + j] = an * r;
      } else {
        dgx[g + j] = 0.0;
        dgx[g + H + j] = 0.0;
        dgx[g + 2u * H + j] = 0.0;
        dgh[g + j] = 0.0;
        dgh[g + H + j] = 0.0;
        dgh[g + 2u * H + j] = 0.0;
      }
      u++;
    }
    workgroupBarrier();
    if (live) {
      u = 0u;
      for (var k = lid.x; k < H; k += WG) {
        var acc = dh[u] * work[row * 4u * H + H + k];
        for (var i = 0u; i < 3u * H; i++) {
          acc += w_hh[i * H + k] * dgh_sh[i];
        }
        dh[u] = acc;
        u++;
      }
    }
    workgroupBarrier();
  }
  u = 0u;
  for (var j = lid.x; j < H; j += WG) {
    carry[b * H + j] = dh[u];
    u++;
  }
}
