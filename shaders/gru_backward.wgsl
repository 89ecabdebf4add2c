// Fused GRU recurrence, backward through the time steps [t0, t1) (the host runs the passes from
// the last step down), eight sequences per workgroup as the lanes of two vec4 (as the forward).
// dh is the gradient reaching h_t: the output's dhs[b, t] plus what step t+1 sent back (kept in
// `carry` [B, H] between passes, rows in the order of `seqs`, zero before the first). For a live
// step, with the forward's saved r, z, n, hn = W_hn·h + b_hn:
//   dn = dh (1 − z), dz = dh (h − n), a_n = dn (1 − n²), dr = a_n · hn,
//   dgh = (dr r(1 − r), dz z(1 − z), a_n · r)   (gradient of W_hh·h + b_hh)
//   dgx = (dgh_r, dgh_z, a_n)                    (gradient of the input projection)
//   dh_prev = dh ⊙ z + W_hhᵀ · dgh.
// A padded step (t ≥ length) only passes dh on; dgx and dgh are written for live steps only, in
// the rows of `seqs` (see gru_forward.wgsl; the host zeroes a padded dgx). The weight gradients
// are matmuls of dgh with the saved hprev, done by the host; the bias gradients are summed here
// over the workgroup's sequences and steps into its row of dbias [groups, 6H]: b_ih's r, z, n
// (dgx), then b_hh's (dgh), added to over the passes.
struct Params { batch: u32, steps: u32, hidden: u32, t0: u32, t1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w_hh: array<f32>;
@group(0) @binding(2) var<storage, read> seqs: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> work: array<f32>;
@group(0) @binding(4) var<storage, read> hprev: array<f32>;
@group(0) @binding(5) var<storage, read> dhs: array<f32>;
@group(0) @binding(6) var<storage, read_write> carry: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgh: array<f32>;
@group(0) @binding(9) var<storage, read_write> dbias: array<f32>;

const WG: u32 = 64u;
const SEQ: u32 = 8u;
const MAX_HIDDEN: u32 = 256u;
const UNITS: u32 = 4u;

// dgh_sh[2i + s / 4][s % 4]: gate gradient i (of 3H) of sequence s; zero where s is not live.
var<workgroup> dgh_sh: array<vec4<f32>, 1536>;

fn seq_of(b: u32) -> vec4<u32> {
  let q = seqs[min(b, p.batch - 1u)];
  return vec4<u32>(select(0u, q.x, b < p.batch), q.yzw);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b0 = wid.x * SEQ;
  let H = p.hidden;
  var seq: array<vec4<u32>, SEQ>;
  // The group's longest sequence: past it every gate gradient is zero, the products are skipped.
  var longest = 0u;
  for (var s = 0u; s < SEQ; s++) {
    seq[s] = seq_of(b0 + s);
    longest = max(longest, seq[s].x);
  }
  var dh: array<array<vec4<f32>, 2>, UNITS>;
  // Per unit, the bias gradients r, z, n of dgx and n of dgh (r, z are the same in both).
  var dbias_u: array<vec4<f32>, UNITS>;
  var u = 0u;
  for (var j = lid.x; j < H; j += WG) {
    for (var s = 0u; s < SEQ; s++) {
      if (b0 + s < p.batch) { dh[u][s / 4u][s % 4u] = carry[(b0 + s) * H + j]; }
    }
    u++;
  }
  for (var t = p.t1; t > p.t0; t--) {
    u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      var gr = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
      var gz = gr;
      var gn = gr;
      for (var s = 0u; s < SEQ; s++) {
        let b = b0 + s;
        if (b >= p.batch) { continue; }
        let row = seq[s].w * p.steps + t - 1u;
        let q = s / 4u;
        let l = s % 4u;
        let d = dh[u][q][l] + dhs[row * H + j];
        dh[u][q][l] = d;
        var ar = 0.0;
        var az = 0.0;
        var hr = 0.0;
        if (t - 1u < seq[s].x) {
          let saved = seq[s].z + t - 1u;
          let w = saved * 4u * H;
          let r = work[w + j];
          let z = work[w + H + j];
          let n = work[w + 2u * H + j];
          let hn = work[w + 3u * H + j];
          let dn = d * (1.0 - z);
          let dz = d * (hprev[saved * H + j] - n);
          let an = dn * (1.0 - n * n);
          ar = an * hn * r * (1.0 - r);
          az = dz * z * (1.0 - z);
          hr = an * r;
          let g = (seq[s].y + t - 1u) * 3u * H;
          dgx[g + j] = ar;
          dgx[g + H + j] = az;
          dgx[g + 2u * H + j] = an;
          let gh = saved * 3u * H;
          dgh[gh + j] = ar;
          dgh[gh + H + j] = az;
          dgh[gh + 2u * H + j] = hr;
          dbias_u[u] += vec4<f32>(ar, az, an, hr);
        }
        gr[q][l] = ar;
        gz[q][l] = az;
        gn[q][l] = hr;
      }
      dgh_sh[2u * j] = gr[0];
      dgh_sh[2u * j + 1u] = gr[1];
      dgh_sh[2u * (H + j)] = gz[0];
      dgh_sh[2u * (H + j) + 1u] = gz[1];
      dgh_sh[2u * (2u * H + j)] = gn[0];
      dgh_sh[2u * (2u * H + j) + 1u] = gn[1];
      u++;
    }
    workgroupBarrier();
    u = 0u;
    for (var k = lid.x; k < H; k += WG) {
      var acc0 = vec4<f32>(0.0);
      var acc1 = vec4<f32>(0.0);
      for (var i = 0u; i < select(0u, 3u * H, t - 1u < longest); i++) {
        let w = w_hh[i * H + k];
        acc0 += w * dgh_sh[2u * i];
        acc1 += w * dgh_sh[2u * i + 1u];
      }
      let acc = array<vec4<f32>, 2>(acc0, acc1);
      for (var s = 0u; s < SEQ; s++) {
        let b = b0 + s;
        if (b >= p.batch || t - 1u >= seq[s].x) { continue; }
        let saved = seq[s].z + t - 1u;
        let q = s / 4u;
        let l = s % 4u;
        dh[u][q][l] = dh[u][q][l] * work[saved * 4u * H + H + k] + acc[q][l];
      }
      u++;
    }
    workgroupBarrier();
  }
  u = 0u;
  for (var j = lid.x; j < H; j += WG) {
    for (var s = 0u; s < SEQ; s++) {
      if (b0 + s < p.batch) { carry[(b0 + s) * H + j] = dh[u][s / 4u][s % 4u]; }
    }
    let row = wid.x * 6u * H + j;
    let db = dbias_u[u];
    dbias[row] += db.x;
    dbias[row + H] += db.y;
    dbias[row + 2u * H] += db.z;
    dbias[row + 3u * H] += db.x;
    dbias[row + 4u * H] += db.y;
    dbias[row + 5u * H] += db.w;
    u++;
  }
}
