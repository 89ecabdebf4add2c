// Fused GRU recurrence, forward (PyTorch's gate order r, z, n). The input projection
// gx = x·W_ihᵀ is a matmul done before (b_ih is added here); this kernel runs the time steps
// [t0, t1) of eight sequences per workgroup, with their hidden states in workgroup memory as two
// vec4 per unit (a weight read serves the eight sequences: llvmpipe pays for every load):
//   r = σ(gx_r + b_ir + W_hr·h + b_hr), z = σ(gx_z + b_iz + W_hz·h + b_hz),
//   n = tanh(gx_n + b_in + r ⊙ (W_hn·h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
// Past a sequence's length its state is carried unchanged, so hs[b, T-1] is its last valid one.
// The host splits the steps into passes because llvmpipe ends an invocation's loops after
// 65,535 iterations in all; a pass reloads the states from hs[b, t0-1].
// Saved for backward: work = (r, z, n, W_hn·h + b_hn) and hprev = h before the step.
// hs is [B, T, H]; gx and the saved tensors are in the rows `seqs` gives: seqs[i] = (length,
// first gx row, first saved row, its row b of hs), step t at row first + t, live steps only in the
// saved tensors (and in gx when the sequences are packed). The host lists the sequences longest
// first, so that a workgroup's eight have nearly one length and few products run past theirs.
struct Params { batch: u32, steps: u32, hidden: u32, t0: u32, t1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_ih: array<f32>;
@group(0) @binding(4) var<storage, read> b_hh: array<f32>;
@group(0) @binding(5) var<storage, read> seqs: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> hs: array<f32>;
@group(0) @binding(7) var<storage, read_write> work: array<f32>;
@group(0) @binding(8) var<storage, read_write> hprev: array<f32>;

const WG: u32 = 64u;
// Sequences per workgroup: the lanes of two vec4.
const SEQ: u32 = 8u;
// Largest hidden size: 4 units per thread of a 64-thread workgroup.
const MAX_HIDDEN: u32 = 256u;
const UNITS: u32 = 4u;

// h_sh[2j + s / 4][s % 4]: unit j of sequence s of this workgroup.
var<workgroup> h_sh: array<vec4<f32>, 512>;

fn stable_sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// Entry b of `seqs`: (length, first gx row, first saved row, row of hs); length 0 past the batch.
fn seq_of(b: u32) -> vec4<u32> {
  let q = seqs[min(b, p.batch - 1u)];
  return vec4<u32>(select(0u, q.x, b < p.batch), q.yzw);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b0 = wid.x * SEQ;
  let H = p.hidden;
  var seq: array<vec4<u32>, SEQ>;
  // The group's longest sequence: past it no state changes, and the products are skipped.
  var longest = 0u;
  for (var s = 0u; s < SEQ; s++) {
    seq[s] = seq_of(b0 + s);
    longest = max(longest, seq[s].x);
  }
  for (var j = lid.x; j < H; j += WG) {
    var h = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var s = 0u; s < SEQ; s++) {
      if (p.t0 > 0u && b0 + s < p.batch) {
        h[s / 4u][s % 4u] = hs[(seq[s].w * p.steps + p.t0 - 1u) * H + j];
      }
    }
    h_sh[2u * j] = h[0];
    h_sh[2u * j + 1u] = h[1];
  }
  workgroupBarrier();
  var h_new: array<array<vec4<f32>, 2>, UNITS>;
  for (var t = p.t0; t < p.t1; t++) {
    var u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      var ar0 = vec4<f32>(b_hh[j] + b_ih[j]);
      var az0 = vec4<f32>(b_hh[H + j] + b_ih[H + j]);
      var an0 = vec4<f32>(b_hh[2u * H + j]);
      var ar1 = ar0;
      var az1 = az0;
      var an1 = an0;
      let wr = j * H;
      let wz = (H + j) * H;
      let wn = (2u * H + j) * H;
      for (var k = 0u; k < select(0u, H, t < longest); k++) {
        let h0 = h_sh[2u * k];
        let h1 = h_sh[2u * k + 1u];
        let cr = w_hh[wr + k];
        let cz = w_hh[wz + k];
        let cn = w_hh[wn + k];
        ar0 += cr * h0;
        ar1 += cr * h1;
        az0 += cz * h0;
        az1 += cz * h1;
        an0 += cn * h0;
        an1 += cn * h1;
      }
      let ar = array<vec4<f32>, 2>(ar0, ar1);
      let az = array<vec4<f32>, 2>(az0, az1);
      let an = array<vec4<f32>, 2>(an0, an1);
      var next = array<vec4<f32>, 2>(h_sh[2u * j], h_sh[2u * j + 1u]);
      for (var s = 0u; s < SEQ; s++) {
        let b = b0 + s;
        if (b >= p.batch) { continue; }
        let q = s / 4u;
        let l = s % 4u;
        let row = seq[s].w * p.steps + t;
        let h_old = next[q][l];
        if (t < seq[s].x) {
          let saved = seq[s].z + t;
          hprev[saved * H + j] = h_old;
          let g = (seq[s].y + t) * 3u * H;
          let r = stable_sigmoid(gx[g + j] + ar[q][l]);
          let z = stable_sigmoid(gx[g + H + j] + az[q][l]);
          let n = tanh(gx[g + 2u * H + j] + b_ih[2u * H + j] + r * an[q][l]);
          let w = saved * 4u * H;
          work[w + j] = r;
          work[w + H + j] = z;
          work[w + 2u * H + j] = n;
          work[w + 3u * H + j] = an[q][l];
          next[q][l] = (1.0 - z) * n + z * h_old;
        }
        hs[row * H + j] = next[q][l];
      }
      h_new[u] = next;
      u++;
    }
    workgroupBarrier();
    u = 0u;
    for (var j = lid.x; j < H; j += WG) {
      h_sh[2u * j] = h_new[u][0];
      h_sh[2u * j + 1u] = h_new[u][1];
      u++;
    }
    workgroupBarrier();
  }
}
