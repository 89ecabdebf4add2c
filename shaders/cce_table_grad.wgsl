// CCE-'s table gradient for per-position negatives, deterministic and without float atomics.
// Needs random.wgsl and negatives.wgsl prepended (the scatter redraws each entry's id).
//
// An entry is one (position n, slot) whose negative id is scored (not the target): e = n·k + slot.
// cce_sampled.wgsl's backward wrote its coefficient coefs[e] = dloss_n · softmax, counted it in
// counts[id] and raised rowmax[id] to |coef|·max|h_n|. Then, here:
//   scan_blocks, scan_top, scan_spread: offsets = exclusive prefix sum of counts (item-major
//     buckets); counts becomes each bucket's write cursor.
//   scatter: list[cursor[id]++] = e. The order inside a bucket depends on thread timing, so
//   sum_runs / carry_out: add each bucket's coef·h_n in 64-bit fixed point, where addition is
//     exact and so the same in any order. The scale is per item, from rowmax and the bucket's
//     size, so that no sum can overflow; the result is rounded to f32 once.
// The list is cut into chunks of `chunk` entries; an invocation takes one chunk and one group of 4
// columns (consecutive lanes share a chunk, so they branch alike and read one h row together on a
// GPU). A bucket inside one chunk is written directly; a bucket that crosses a chunk boundary is
// added with integer atomics into the carry slot of the chunk it starts in, which carry_out
// converts. Counts, offsets and the list span all items; sum_runs and carry_out run once per
// window of table rows [row0, row0 + rows).
struct Params {
  n: u32,
  d: u32,
  kind: u32,
  k: u32,
  items: u32,
  seed: u32,
  row0: u32,
  rows: u32,
  // Scan: counts per block, and blocks.
  span: u32,
  blocks: u32,
  // Entries per chunk of the list, and column groups of 4 (ceil(d / 4)).
  chunk: u32,
  quads: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<i32>;
// [items + 2]: entries per id (the last cell stays 0), then write cursors.
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
// [items + 1]: bits of the largest |coef|·max|h_n| of each id's entries (non-negative floats
// order like their bits).
@group(0) @binding(5) var<storage, read_write> rowmax: array<atomic<u32>>;
// [items + 2]: first list index of each id's bucket; offsets[items + 1] = entries in all.
@group(0) @binding(6) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(7) var<storage, read_write> block_sums: array<u32>;
@group(0) @binding(8) var<storage, read_write> list: array<u32>;
@group(0) @binding(9) var<storage, read> coefs: array<f32>;
// The table gradient's window (rows row0 .. row0 + rows).
@group(0) @binding(10) var<storage, read_write> dtable: array<f32>;
// Per chunk and column: a 64-bit fixed-point sum as (low, high) words.
@group(0) @binding(11) var<storage, read_write> carry: array<atomic<u32>>;

// scale_exponent's answer for an id whose coefficients are all 0: nothing to add.
const ZERO_SUM: i32 = 1000;

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

@compute @workgroup_size(64)
fn scan_blocks(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = flat_index(gid, nwg);
  if (b >= p.blocks) { return; }
  let end = min((b + 1u) * p.span, p.items + 2u);
  var total = 0u;
  for (var i = b * p.span; i < end; i++) { total += atomicLoad(&counts[i]); }
  block_sums[b] = total;
}

// One invocation: block sums become their exclusive prefix (blocks ≤ the loop budget).
@compute @workgroup_size(1)
fn scan_top() {
  var run = 0u;
  for (var b = 0u; b < p.blocks; b++) {
    let c = block_sums[b];
    block_sums[b] = run;
    run += c;
  }
}

@compute @workgroup_size(64)
fn scan_spread(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = flat_index(gid, nwg);
  if (b >= p.blocks) { return; }
  let end = min((b + 1u) * p.span, p.items + 2u);
  var run = block_sums[b];
  for (var i = b * p.span; i < end; i++) {
    let c = atomicLoad(&counts[i]);
    offsets[i] = run;
    atomicStore(&counts[i], run);
    run += c;
  }
}

// An invocation per (position, slot): the same entries, by the same rule, as the backward's.
@compute @workgroup_size(64)
fn scatter(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg);
  if (e >= p.n * p.k) { return; }
  let n = e / p.k;
  let id = negative_id(NegativeSpec(p.kind, p.k, p.items, p.seed), n, e % p.k);
  if (id == u32(targets[n])) { return; }
  list[atomicAdd(&counts[id], 1u)] = e;
}

// The id whose bucket holds list index j: the largest id with offsets[id] ≤ j (empty buckets
// share their offset with the next id, so the largest one is the bucket j lies in).
fn bucket_of(j: u32) -> u32 {
  var lo = 0u;
  var hi = p.items;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (offsets[mid] <= j) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

// 2^e as an exact f32, e in [-126, 127].
fn pow2(e: i32) -> f32 {
  return bitcast<f32>(u32(e + 127) << 23u);
}

// The fixed-point exponent t of an id: values are added as round(v · 2^(t + 32)). Its bucket's
// sum is at most count · rowmax < 2^(f + 2), f = floor(log2(count · rowmax)), so with
// t = 26 − f every sum stays below 2^60 and every value's high word below 2^27.
// Returns ZERO_SUM when every coefficient of the id is 0 (t itself spans [-102, 152]).
fn scale_exponent(id: u32) -> i32 {
  let m = bitcast<f32>(atomicLoad(&rowmax[id]));
  let bound = f32(offsets[id + 1u] - offsets[id]) * m;
  if (!(bound > 0.0)) { return ZERO_SUM; }
  let f = max(i32((bitcast<u32>(bound) >> 23u) & 0xFFu) - 127, -126);
  return 26 - f;
}

// v · 2^t in two exact steps: t spans [-101, 152], beyond one f32 power of two.
fn scaled(v: vec4f, t: i32) -> vec4f {
  let half = t / 2;
  return v * pow2(half) * pow2(t - half);
}

// A 64-bit two's complement sum of 4 columns: low and high words.
struct Fixed { lo: vec4u, hi: vec4u }

fn fixed_add(acc: ptr<function, Fixed>, v: vec4f, t: i32) {
  let y = scaled(v, t);
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
  return scaled(select(size, -size, negative), -t);
}

// Columns 4q .. 4q + 3 of row n of h (0 past d).
fn h_quad(n: u32, q: u32) -> vec4f {
  let c = 4u * q;
  let base = n * p.d + c;
  var v = vec4f(h[base], 0.0, 0.0, 0.0);
  if (c + 1u < p.d) { v.y = h[base + 1u]; }
  if (c + 2u < p.d) { v.z = h[base + 2u]; }
  if (c + 3u < p.d) { v.w = h[base + 3u]; }
  return v;
}

fn in_window(id: u32) -> bool {
  return id - p.row0 < p.rows;
}

// dtable row (window-relative) += v over the quad's columns that exist.
fn add_to_dtable(id: u32, q: u32, v: vec4f) {
  let base = (id - p.row0) * p.d + 4u * q;
  dtable[base] += v.x;
  if (4u * q + 1u < p.d) { dtable[base + 1u] += v.y; }
  if (4u * q + 2u < p.d) { dtable[base + 2u] += v.z; }
  if (4u * q + 3u < p.d) { dtable[base + 3u] += v.w; }
}

// carry slot of chunk `c`, quad q, column i: (low, high) words at 2·index.
fn carry_index(c: u32, q: u32, i: u32) -> u32 {
  return 2u * ((c * p.quads + q) * 4u + i);
}

// Adds a chunk's share of a bucket that crosses chunk boundaries to its carry slot: exact 64-bit
// additions as two 32-bit atomics, so the total does not depend on their order.
fn add_to_carry(slot: u32, q: u32, x: Fixed) {
  for (var i = 0u; i < 4u; i++) {
    let at = carry_index(slot, q, i);
    let old = atomicAdd(&carry[at], x.lo[i]);
    let overflow = select(0u, 1u, old + x.lo[i] < old);
    atomicAdd(&carry[at + 1u], x.hi[i] + overflow);
  }
}

fn flush(id: u32, t: i32, chunk_lo: u32, chunk_hi: u32, q: u32, x: Fixed) {
  if (t == ZERO_SUM || !in_window(id)) { return; }
  let start = offsets[id];
  if (start >= chunk_lo && offsets[id + 1u] <= chunk_hi) {
    add_to_dtable(id, q, fixed_to_f32(x, t));
  } else {
    add_to_carry(start / p.chunk, q, x);
  }
}

// An invocation per (chunk, quad): walks the chunk's list entries, one run per bucket.
@compute @workgroup_size(64)
fn sum_runs(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  let c = i / p.quads;
  let q = i % p.quads;
  let total = offsets[p.items + 1u];
  let lo = c * p.chunk;
  if (lo >= total) { return; }
  let hi = min(lo + p.chunk, total);
  var id = bucket_of(lo);
  var end = offsets[id + 1u];
  var t = scale_exponent(id);
  var acc = Fixed(vec4u(0u), vec4u(0u));
  for (var j = lo; j < hi; j++) {
    if (j == end) {
      flush(id, t, lo, hi, q, acc);
      id = bucket_of(j);
      end = offsets[id + 1u];
      t = scale_exponent(id);
      acc = Fixed(vec4u(0u), vec4u(0u));
    }
    if (t != ZERO_SUM && in_window(id)) {
      let e = list[j];
      fixed_add(&acc, coefs[e] * h_quad(e / p.k, q), t);
    }
  }
  flush(id, t, lo, hi, q, acc);
}

// An invocation per (chunk, quad): the bucket that starts in the chunk and ends past it.
@compute @workgroup_size(64)
fn carry_out(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  let c = i / p.quads;
  let q = i % p.quads;
  let total = offsets[p.items + 1u];
  let lo = c * p.chunk;
  if (lo >= total) { return; }
  let id = bucket_of(min(lo + p.chunk, total) - 1u);
  let t = scale_exponent(id);
  if (offsets[id] < lo || offsets[id + 1u] <= lo + p.chunk || t == ZERO_SUM || !in_window(id)) {
    return;
  }
  var x = Fixed(vec4u(0u), vec4u(0u));
  for (var col = 0u; col < 4u; col++) {
    let at = carry_index(c, q, col);
    x.lo[col] = atomicLoad(&carry[at]);
    x.hi[col] = atomicLoad(&carry[at + 1u]);
  }
  add_to_dtable(id, q, fixed_to_f32(x, t));
}
