// Head and sampler of batch-1 decoding as their own dispatches, over the model's own tensors:
// head_sample in one workgroup, head spread over workgroups, sample (decode_pick.wgsl) in one;
// feed sets x = embed[token] for a token chosen on the host (teacher forcing, tests).
//   head: logits = Whead · (rmsnorm(x)·nf) → work[logits_at..] (Whead [vocab, dim]).
// LANE_ROWS = 1: an invocation computes whole rows (llvmpipe); 0: a workgroup computes a row and
// sums it in a tree (a GPU).
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read> nf: array<f32>;
@group(0) @binding(4) var<storage, read> head_w: array<f32>;
@group(0) @binding(5) var<storage, read> embed: array<f32>;
@group(0) @binding(6) var<storage, read_write> ids: array<u32>;

override LANE_ROWS: u32 = 1u;
const WG: u32 = 64u;

// The workgroup's sum of v, for every invocation (red1 is decode_pick.wgsl's).
fn sum1(lid: u32, v: f32) -> f32 {
  red1[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red1[lid] += red1[lid + k]; }
    workgroupBarrier();
  }
  let total = red1[0];
  workgroupBarrier();
  return total;
}

fn part_head(r: u32, c0: u32, step: u32) -> f32 {
  var acc = 0.0;
  for (var c = c0; c < p.dim; c += step) { acc += head_w[r * p.dim + c] * (x[c] * nf[c]); }
  return acc;
}

fn phase_head(g: u32, ng: u32, lid: u32) {
  if (LANE_ROWS == 1u) {
    // Every invocation sums x itself: the same addresses for all, and no barrier.
    var s = 0.0;
    for (var c = 0u; c < p.dim; c++) { s += x[c] * x[c]; }
    let inv = inverseSqrt(s / f32(p.dim) + p.eps);
    for (var r = g * WG + lid; r < p.vocab; r += ng * WG) {
      work[p.logits_at + r] = part_head(r, 0u, 1u) * inv;
    }
    return;
  }
  var s = 0.0;
  for (var c = lid; c < p.dim; c += WG) { s += x[c] * x[c]; }
  let inv = inverseSqrt(sum1(lid, s) / f32(p.dim) + p.eps);
  for (var r = g; r < p.vocab; r += ng) {
    let d = sum1(lid, part_head(r, lid, WG)) * inv;
    if (lid == 0u) { work[p.logits_at + r] = d; }
  }
}

// decode_pick.wgsl's accessors.
fn logit(v: u32) -> f32 { return work[p.logits_at + v]; }

fn set_input(token: u32, lid: u32) {
  for (var c = lid; c < p.dim; c += WG) { x[c] = embed[token * p.dim + c]; }
}

@compute @workgroup_size(WG)
fn head_sample(@builtin(local_invocation_index) lid: u32) {
  phase_head(0u, 1u, lid);
  storageBarrier();
  workgroupBarrier();
  phase_sample(lid, p.index);
}

@compute @workgroup_size(WG)
fn head(@builtin(workgroup_id) g: vec3u, @builtin(num_workgroups) ng: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  phase_head(g.x, ng.x, lid);
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) lid: u32) {
  phase_sample(lid, p.index);
}

@compute @workgroup_size(WG)
fn feed(@builtin(local_invocation_index) lid: u32) {
  set_input(p.token, lid);
}
