// Pruning into the N:M format (src/sparse/prune.ts): keep the top N of every group of M by score
// (|x| when no scores are given), ties to the lower position, write the kept values, their
// metadata and optionally the masked dense tensor. Encoding is the same kernel on magnitudes.
// `prune_rows` keeps the top k of a whole lane instead (unstructured: one group of M = D with
// index encoding). Needs the metadata zeroed: fields are OR-ed in, since a word may hold fields
// of two groups that different invocations write.
//
// Tensors are viewed as [outer, len, inner] (len = D for x, scores and masked, kept per lane for
// values); lane = outer index · inner + inner index.
struct Params {
  lanes: u32,
  d: u32,
  inner: u32,
  n: u32,
  m: u32,
  width: u32,
  words: u32,
  groups: u32,
  kept: u32,
  use_scores: u32,
  write_masked: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Bound to x when the scores are magnitudes (use_scores = 0).
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(0) @binding(3) var<storage, read_write> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> nm_meta: array<atomic<u32>>;
// A one-float placeholder when write_masked = 0.
@group(0) @binding(5) var<storage, read_write> masked: array<f32>;
@group(0) @binding(6) var<storage, read> binomials: array<u32>;

override COMBINATORIAL: bool = false;

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

fn elem(lane: u32, k: u32, len: u32) -> u32 {
  return ((lane / p.inner) * len + k) * p.inner + lane % p.inner;
}

fn score(i: u32) -> f32 {
  if (p.use_scores != 0u) { return scores[i]; }
  return abs(x[i]);
}

fn put_field(lane: u32, field: u32, value: u32) {
  let bit = field * p.width;
  let at = lane * p.words + (bit >> 5u);
  let off = bit & 31u;
  atomicOr(&nm_meta[at], value << off);
  if (off + p.width > 32u) { atomicOr(&nm_meta[at + 1u], value >> (32u - off)); }
}

// An invocation per group: a position is kept when fewer than N others of its group beat it (a
// higher score, or an equal one at a lower position). The j < N guard keeps NaN scores, which
// beat nothing, from writing into the next group.
@compute @workgroup_size(64)
fn prune_groups(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = flat_index(gid, nwg);
  if (id >= p.lanes * p.groups) { return; }
  let lane = id / p.groups;
  let g = id % p.groups;
  let first = g * p.m;
  var j = 0u;
  var code = 0u;
  for (var c = 0u; c < p.m; c++) {
    let i = elem(lane, first + c, p.d);
    let s = score(i);
    var beaten = 0u;
    for (var k = 0u; k < p.m; k++) {
      let t = score(elem(lane, first + k, p.d));
      beaten += select(0u, 1u, t > s || (t == s && k < c));
    }
    let keep = beaten < p.n && j < p.n;
    if (p.write_masked != 0u) { masked[i] = select(0.0, x[i], keep); }
    if (keep) {
      values[elem(lane, g * p.n + j, p.kept)] = x[i];
      if (COMBINATORIAL) {
        code += binomials[c * 33u + j + 1u];
      } else {
        put_field(lane, g * p.n + j, c);
      }
      j++;
    }
  }
  if (COMBINATORIAL) { put_field(lane, g, code); }
}

// Scores as u32 keys in the same order (flip the sign bit of positives, every bit of negatives;
// −0 counts as +0, as the float comparisons of prune_groups and the host have it).
fn key(i: u32) -> u32 {
  let s = score(i);
  let b = select(bitcast<u32>(s), 0u, s == 0.0);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

var<workgroup> wg_count: atomic<u32>;
var<workgroup> wg_greater: array<u32, 64>;
var<workgroup> wg_ties: array<u32, 64>;

// A workgroup per lane keeps its top p.n (k), each invocation owning a contiguous chunk. The
// k-th largest key τ is found bit by bit (the largest τ with at least k keys ≥ τ); keys above τ
// are kept and, of those equal to τ, the first ones in position order, counted across chunks
// by a prefix sum, so that exactly k are kept in ascending order.
@compute @workgroup_size(64)
fn prune_rows(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let lane = wg.x + wg.y * nwg.x;
  if (lane >= p.lanes) { return; }
  let chunk = (p.d + 63u) / 64u;
  let lo = min(t * chunk, p.d);
  let hi = min(lo + chunk, p.d);
  var tau = 0u;
  for (var bit = 32u; bit > 0u; bit--) {
    let candidate = tau | (1u << (bit - 1u));
    if (t == 0u) { atomicStore(&wg_count, 0u); }
    workgroupBarrier();
    var mine = 0u;
    for (var i = lo; i < hi; i++) { mine += select(0u, 1u, key(elem(lane, i, p.d)) >= candidate); }
    atomicAdd(&wg_count, mine);
    workgroupBarrier();
    if (atomicLoad(&wg_count) >= p.n) { tau = candidate; }
    workgroupBarrier();
  }
  var greater = 0u;
  var ties = 0u;
  for (var i = lo; i < hi; i++) {
    let k = key(elem(lane, i, p.d));
    greater += select(0u, 1u, k > tau);
    ties += select(0u, 1u, k == tau);
  }
  wg_greater[t] = greater;
  wg_ties[t] = ties;
  workgroupBarrier();
  var greater_before = 0u;
  var ties_before = 0u;
  var greater_all = 0u;
  for (var u = 0u; u < 64u; u++) {
    if (u < t) {
      greater_before += wg_greater[u];
      ties_before += wg_ties[u];
    }
    greater_all += wg_greater[u];
  }
  let tie_quota = p.n - greater_all;
  var q = greater_before + min(ties_before, tie_quota);
  var tie = ties_before;
  for (var i = lo; i < hi; i++) {
    let at = elem(lane, i, p.d);
    let k = key(at);
    var keep = k > tau;
    if (k == tau) {
      keep = tie < tie_quota;
      tie++;
    }
    if (p.write_masked != 0u) { masked[at] = select(0.0, x[at], keep); }
    if (keep) {
      values[elem(lane, q, p.kept)] = x[at];
      put_field(lane, q, i);
      q++;
    }
  }
}
