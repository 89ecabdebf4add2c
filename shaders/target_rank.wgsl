// rank[row] = number of items whose score is strictly greater than the target item's score.
// One workgroup per row: each invocation counts a strided part of the row, then a tree reduction
// in workgroup memory sums the counts (integers, so the result is exact and deterministic).
// Scores are compared as order-preserving u32 keys rather than floats, so -Infinity (masked
// items) compares exactly even where a GPU treats infinities loosely; -0 and +0 are equal.
// A dispatch counts the columns [col0, col0 + width) (the whole row, or one segment of it for a
// software adapter's loop cap): the segment at col0 = 0 sets the rank, later ones add to it.
struct Params { rows: u32, cols: u32, row0: u32, col0: u32, width: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> ranks: array<i32>;

const WG: u32 = 256u;
var<workgroup> red: array<u32, WG>;

// Monotone map of f32 bits to u32: a > b as floats ⇔ key(a) > key(b) (NaNs order by their bits).
fn key(bits: u32) -> u32 {
  let b = select(bits, 0u, bits == 0x80000000u);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

@compute @workgroup_size(WG)
fn target_rank(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let row = p.row0 + r;
  let base = r * p.cols;
  let t = key(scores[base + u32(targets[row])]);
  var n = 0u;
  let end = min(p.col0 + p.width, p.cols);
  for (var c = p.col0 + lid; c < end; c += WG) {
    n += select(0u, 1u, key(scores[base + c]) > t);
  }
  red[lid] = n;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { ranks[row] = select(ranks[row], 0, p.col0 == 0u) + i32(red[0]); }
}
