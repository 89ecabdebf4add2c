// CCE-'s table gradient for per-position negatives, deterministic and without float atomics.
// Needs random.wgsl and negatives.wgsl prepended (count redraws each entry's id), and one of
// cce_table_grad_rows_*.wgsl, which binds h [N, d] (binding 2) and the table gradient's window
// (binding 15) and reads and writes them by group of 4 columns.
//
// An entry is one (position n, slot) whose negative id is scored (not the target).
//   count: entries per id (counts), before cce_sampled.wgsl's backward;
//   scan_blocks, scan_top, scan_spread: prefix sums over ids of three counts: entries (the
//     item-major buckets' offsets), pieces (a bucket cut into pieces of `chunk` entries) and
//     buckets of more than one piece (their carry slots); each piece learns its id, and counts
//     become the buckets' write cursors;
//   then the backward computes each entry's coefficient dloss_n · softmax and appends (n, coef) to
//     its id's bucket (list, list_coefs at cursor[id]++), raising rowmax[id] to |coef|·max|h_n|.
//     The order inside a bucket depends on thread timing, so
//   sum_pieces / carry_out: add each bucket's coef·h_n in 64-bit fixed point, where addition is
//     exact and so the same in any order. The scale is per id, from rowmax and the bucket's size,
//     so that no sum can overflow; the result is rounded to f32 once.
// An invocation takes one piece and GROUP groups of 4 columns: consecutive lanes share a piece,
// so they loop and branch alike (and read one h row together on a GPU), and the piece's lookups
// are shared by 16 columns. A one-piece bucket is written directly; the pieces of a longer one are
// added with integer atomics into its carry slot, which carry_out converts. Counts, offsets and the list span all items; sum_pieces and
// carry_out run once per window of table rows [row0, row0 + rows).
struct Params {
  n: u32,
  d: u32,
  kind: u32,
  k: u32,
  items: u32,
  seed: u32,
  row0: u32,
  rows: u32,
  // Scan: ids per block, and blocks.
  span: u32,
  blocks: u32,
  // Entries per piece, column groups of 4 (ceil(d / 4)), and invocations per piece
  // (ceil(quads / GROUP)).
  chunk: u32,
  quads: u32,
  groups: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> targets: array<i32>;
// [items + 2]: entries per id (the last cell stays 0), then write cursors (the backward's).
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
// [items + 1]: bits of the largest |coef|·max|h_n| of each id's entries (non-negative floats
// order like their bits), raised by the backward.
@group(0) @binding(5) var<storage, read_write> rowmax: array<atomic<u32>>;
// [items + 2] each: per id its bucket's first list index, first piece and carry slot (exclusive
// prefix sums); the cells at items + 1 hold the totals.
@group(0) @binding(6) var<storage, read_write> entry_offsets: array<u32>;
@group(0) @binding(7) var<storage, read_write> piece_offsets: array<u32>;
@group(0) @binding(8) var<storage, read_write> carry_offsets: array<u32>;
// [blocks]: the scan's per-block sums of the three counts.
@group(0) @binding(9) var<storage, read_write> block_sums: array<vec3u>;
// [N·K at most]: the buckets' entries, in bucket order: position and coefficient.
@group(0) @binding(10) var<storage, read> list: array<u32>;
@group(0) @binding(11) var<storage, read> list_coefs: array<f32>;
// Per carry slot and column: a 64-bit fixed-point sum as (low, high) words.
@group(0) @binding(12) var<storage, read_write> carry: array<atomic<u32>>;
// [pieces]: the id of each piece.
@group(0) @binding(13) var<storage, read_write> piece_ids: array<u32>;
// [carry slots]: the id of each bucket of several pieces.
@group(0) @binding(14) var<storage, read_write> carry_ids: array<u32>;

// The fixed-point exponent of an id whose coefficients are all 0: nothing to add.
const ZERO_SUM: i32 = 1000;

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

fn first_entry(id: u32) -> u32 {
  return entry_offsets[id];
}

fn first_piece(id: u32) -> u32 {
  return piece_offsets[id];
}

fn carry_slot(id: u32) -> u32 {
  return carry_offsets[id];
}

// Entries, pieces and carry slots (0 or 1) of an id's bucket.
fn bucket_sizes(i: u32) -> vec3u {
  let c = atomicLoad(&counts[i]);
  return vec3u(c, (c + p.chunk - 1u) / p.chunk, select(0u, 1u, c > p.chunk));
}

@compute @workgroup_size(64)
fn scan_blocks(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = flat_index(gid, nwg);
  if (b >= p.blocks) { return; }
  let end = min((b + 1u) * p.span, p.items + 2u);
  var total = vec3u(0u);
  for (var i = b * p.span; i < end; i++) { total += bucket_sizes(i); }
  block_sums[b] = total;
}

// One invocation: block sums become their exclusive prefix (blocks ≤ the loop budget).
@compute @workgroup_size(1)
fn scan_top() {
  var run = vec3u(0u);
  for (var b = 0u; b < p.blocks; b++) {
    let c = block_sums[b];
    block_sums[b] = run;
    run += c;
  }
}

// 2^e as an exact f32, e in [-126, 127].
fn pow2(e: i32) -> f32 {
  return bitcast<f32>(u32(e + 127) << 23u);
}

// The fixed-point exponent t of an id: values are added as round(v · 2^(t + 32)). Its bucket's
// sum is at most count · rowmax < 2^(f + 2), f = floor(log2(count · rowmax)), so with
// t = 26 − f every sum stays below 2^60 and every value's high word below 2^27 (t spans
// [-102, 152]). ZERO_SUM when every coefficient of the id is 0.
fn scale_exponent(count: u32, largest: f32) -> i32 {
  let bound = f32(count) * largest;
  if (!(bound > 0.0)) { return ZERO_SUM; }
  let f = max(i32((bitcast<u32>(bound) >> 23u) & 0xFFu) - 127, -126);
  return 26 - f;
}

// Per block of ids: their offsets and piece ids; counts become write cursors.
@compute @workgroup_size(64)
fn scan_spread(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = flat_index(gid, nwg);
  if (b >= p.blocks) { return; }
  let end = min((b + 1u) * p.span, p.items + 2u);
  var run = block_sums[b];
  for (var i = b * p.span; i < end; i++) {
    let size = bucket_sizes(i);
    entry_offsets[i] = run.x;
    piece_offsets[i] = run.y;
    carry_offsets[i] = run.z;
    atomicStore(&counts[i], run.x);
    for (var piece = 0u; piece < size.y; piece++) { piece_ids[run.y + piece] = i; }
    if (size.z != 0u) { carry_ids[run.z] = i; }
    run += size;
  }
}

// An invocation per (position, slot): the same entries, by the same rule, as the backward's.
@compute @workgroup_size(64)
fn count(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg);
  if (e >= p.n * p.k) { return; }
  let n = e / p.k;
  let id = negative_id(NegativeSpec(p.kind, p.k, p.items, p.seed), n, e % p.k);
  if (id != u32(targets[n])) { atomicAdd(&counts[id], 1u); }
}

// Multiplies by 2^t in two exact steps (t spans [-102, 152], beyond one f32 power of two).
fn power_pair(t: i32) -> vec2f {
  let half = t / 2;
  return vec2f(pow2(half), pow2(t - half));
}

// A 64-bit two's complement sum of 4 columns: low and high words.
struct Fixed { lo: vec4u, hi: vec4u }

// acc += round(v · 2^(t + 32)), `up` = power_pair(t).
fn fixed_add(acc: ptr<function, Fixed>, v: vec4f, up: vec2f) {
  let y = v * up.x * up.y;
  let whole = floor(y);
  let lo = vec4u((y - whole) * 4294967296.0);
  let sum = (*acc).lo + lo;
  (*acc).hi += bitcast<vec4u>(vec4i(whole)) + select(vec4u(0u), vec4u(1u), sum < lo);
  (*acc).lo = sum;
}

// The sum as f32: (high + low / 2^32) · 2^-t, from its magnitude so that the low word's
// rounding stays relative to it.
fn fixed_to_f32(x: Fixed, t: i32) -> vec4f {
  let negative = bitcast<vec4i>(x.hi) < vec4i(0);
  let neg_lo = ~x.lo + 1u;
  let neg_hi = ~x.hi + select(vec4u(0u), vec4u(1u), neg_lo == vec4u(0u));
  let lo = select(x.lo, neg_lo, negative);
  let hi = select(x.hi, neg_hi, negative);
  let size = vec4f(hi) + vec4f(lo) * 2.3283064365386963e-10;
  let down = power_pair(-t);
  return select(size, -size, negative) * down.x * down.y;
}

fn in_window(id: u32) -> bool {
  return id - p.row0 < p.rows;
}

// Carry slot s, quad q, column i: (low, high) words at 2·index.
fn carry_index(s: u32, q: u32, i: u32) -> u32 {
  return 2u * ((s * p.quads + q) * 4u + i);
}

// Adds a piece's share of a bucket of several pieces to its carry slot: exact 64-bit
// additions as two 32-bit atomics, so the total does not depend on their order.
fn add_to_carry(slot: u32, q: u32, x: Fixed) {
  for (var i = 0u; i < 4u; i++) {
    let at = carry_index(slot, q, i);
    let old = atomicAdd(&carry[at], x.lo[i]);
    let overflow = select(0u, 1u, old + x.lo[i] < old);
    atomicAdd(&carry[at + 1u], x.hi[i] + overflow);
  }
}

fn exponent(id: u32) -> i32 {
  let count = first_entry(id + 1u) - first_entry(id);
  return scale_exponent(count, bitcast<f32>(atomicLoad(&rowmax[id])));
}

// Column groups one invocation of sum_pieces sums.
const GROUP: u32 = 4u;

// Writes or carries quad q's sum of a piece of `id` (none past the last quad).
fn finish(id: u32, q: u32, x: Fixed, t: i32, single: bool) {
  if (q >= p.quads) { return; }
  if (single) {
    store_quad(id, q, fixed_to_f32(x, t));
  } else {
    add_to_carry(carry_slot(id), q, x);
  }
}

// Adds coef · h_n's quad q to x (nothing past the last quad).
fn add_quad(x: ptr<function, Fixed>, n: u32, q: u32, coef: f32, up: vec2f) {
  if (q < p.quads) { fixed_add(x, coef * h_quad(n, q), up); }
}

// An invocation per (piece, GROUP quads): the piece's entries, summed and written or carried.
@compute @workgroup_size(64)
fn sum_pieces(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  let piece = i / p.groups;
  let q = (i % p.groups) * GROUP;
  if (piece >= first_piece(p.items + 1u)) { return; }
  let id = piece_ids[piece];
  let t = exponent(id);
  if (t == ZERO_SUM || !in_window(id)) { return; }
  let start = first_entry(id);
  let count = first_entry(id + 1u) - start;
  let lo = start + (piece - first_piece(id)) * p.chunk;
  let hi = min(lo + p.chunk, start + count);
  let up = power_pair(t);
  var a0 = Fixed(vec4u(0u), vec4u(0u));
  var a1 = a0;
  var a2 = a0;
  var a3 = a0;
  for (var j = lo; j < hi; j++) {
    let n = list[j];
    let coef = list_coefs[j];
    add_quad(&a0, n, q, coef, up);
    add_quad(&a1, n, q + 1u, coef, up);
    add_quad(&a2, n, q + 2u, coef, up);
    add_quad(&a3, n, q + 3u, coef, up);
  }
  let single = count <= p.chunk;
  finish(id, q, a0, t, single);
  finish(id, q + 1u, a1, t, single);
  finish(id, q + 2u, a2, t, single);
  finish(id, q + 3u, a3, t, single);
}

// An invocation per (carry slot, quad): converts the sum of a bucket of several pieces.
@compute @workgroup_size(64)
fn carry_out(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  let slot = i / p.quads;
  let q = i % p.quads;
  if (slot >= carry_slot(p.items + 1u)) { return; }
  let id = carry_ids[slot];
  let t = exponent(id);
  if (t == ZERO_SUM || !in_window(id)) { return; }
  var x = Fixed(vec4u(0u), vec4u(0u));
  for (var col = 0u; col < 4u; col++) {
    let at = carry_index(slot, q, col);
    x.lo[col] = atomicLoad(&carry[at]);
    x.hi[col] = atomicLoad(&carry[at + 1u]);
  }
  store_quad(id, q, fixed_to_f32(x, t));
}
