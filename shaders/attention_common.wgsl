// Declarations shared by the causal attention kernels. The TS side builds each shader as
// element type (attention_scalar.wgsl or attention_vec4.wgsl: Vec, its width VW and vdot) + this
// file + attention_forward.wgsl or attention_backward.wgsl; the [B, T, D] tensors are arrays of
// Vec and every loop over a head's dimensions steps VW floats at a time.
//
// q, out and their gradients are [B, T, D], k, v and theirs [B, T, kvHeads · dh], bound as a
// window of p.batches batches starting at batch p.b0; the key mask [B, T] and the per-row
// statistics [B, heads, T] are bound whole and indexed with p.b0 added. Query head h is the
// column slice [h·dh, (h+1)·dh) of D; grouped-query attention (kvHeads < heads) gives each key and
// value head to heads / kvHeads consecutive query heads: query head h reads kv head
// h / (heads / kvHeads).
//
// llvmpipe fetches every storage load lane by lane, so loads, not arithmetic, bound the speed: an
// invocation owns a register tile of QR query rows × KC keys and reuses every loaded value across
// a row or column of it. No workgroup memory and no barriers: each invocation reads and writes
// only its own rows, so the results need no atomics and do not depend on scheduling.
struct Params {
  batches: u32,
  T: u32,
  D: u32,
  heads: u32,
  dh: u32,
  b0: u32,
  scale: f32,
  // Attention dropout: probability P_ij survives when rand_u32(seed, step, index of (b, h, i, j))
  // ≥ threshold, and is then scaled by keepScale = 1 / (1 − p).
  seed: u32,
  step: u32,
  threshold: u32,
  keepScale: f32,
  kvHeads: u32,
  // attention_backward.wgsl's dq parts: Vec elements of one key block's part (one q window).
  partStride: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<Vec>;
@group(0) @binding(2) var<storage, read> k: array<Vec>;
@group(0) @binding(3) var<storage, read> v: array<Vec>;
// i32 or u32 [B, T]; nonzero marks a real token. Bound to a stand-in buffer when HAS_MASK is off.
@group(0) @binding(4) var<storage, read> keyMask: array<u32>;
// PACKED: sequence b owns rows [segments[b], segments[b + 1]) of q, k, v, out and their gradients
// ([rows, D], no padding), and p.T is the longest sequence. Bound to a stand-in buffer otherwise.
@group(0) @binding(5) var<storage, read> segments: array<u32>;

override HAS_MASK: bool = false;
override PACKED: bool = false;
// Needs random.wgsl prepended; attention.ts does so for every variant.
override HAS_DROPOUT: bool = false;

// 16 × 16 tiles measured fastest on llvmpipe for T = 50 and T = 200 (8 × 8: ~1.3× slower); the
// register arrays need const sizes, so attention.ts repeats QR and KR.
const QR: u32 = 16u;
const KC: u32 = 16u;
// The dk/dv kernel's tile: KR key rows per invocation, KQ queries per step.
const KR: u32 = 16u;
const KQ: u32 = 16u;
const WG: u32 = 64u;
// Stands for an empty set of keys: finite, so exp(x − BIG) is 0 and never inf − inf.
const BIG: f32 = 3.0e38;
// The register kernels keep scores in base 2.
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

// A block is QR query rows (or KR key rows) of one (batch, head): a query head, or in the dk/dv
// kernel a key-value head. Block-major order keeps the lanes of a SIMD group on blocks that loop
// over the same number of tiles; with lastFirst the blocks are numbered from the end of the
// sequence, so that the longest workgroups start first (the last query blocks see the most keys,
// the first key blocks the most queries).
struct Block {
  b: u32,
  h: u32,
  row0: u32,
  // Rows of sequence b: p.T, or its own length when PACKED; start: the window row of its row 0.
  len: u32,
  start: u32,
  valid: bool,
}

// heads: p.heads for blocks of query rows, p.kvHeads for blocks of key rows.
fn block_of(gid: vec3u, nwg: vec3u, rowsPerBlock: u32, lastFirst: bool, heads: u32) -> Block {
  let item = gid.x + gid.y * nwg.x * WG;
  let pairs = p.batches * heads;
  let blocks = (p.T + rowsPerBlock - 1u) / rowsPerBlock;
  var blk: Block;
  blk.valid = item < blocks * pairs;
  let pair = item % pairs;
  blk.b = pair / heads;
  blk.h = pair % heads;
  let block = item / pairs;
  blk.row0 = select(block, blocks - 1u - block, lastFirst) * rowsPerBlock;
  blk.len = p.T;
  blk.start = blk.b * p.T;
  if (PACKED && blk.valid) {
    blk.start = segments[blk.b];
    blk.len = segments[blk.b + 1u] - blk.start;
    // Blocks past a short sequence's end have nothing to do.
    blk.valid = blk.row0 < blk.len;
  }
  return blk;
}

// Offsets in Vec units of element 0 of (b, t) in query head h of a [B, T, D] window, and in
// key-value head g of a [B, T, kvHeads · dh] window (PACKED: of row t of sequence b). Kernels read
// and write rows past the end (t ≥ blk.len) of a partial tile never.
fn q_offset(blk: Block, h: u32, t: u32) -> u32 {
  return ((blk.start + t) * p.D + h * p.dh) / VW;
}

fn kv_offset(blk: Block, g: u32, t: u32) -> u32 {
  return ((blk.start + t) * p.kvHeads * p.dh + g * p.dh) / VW;
}

// The KR key rows of a dk/dv block (blk.h a key-value head): where each starts, whether it may
// be attended to, and whether any may.
struct KeyRows {
  at: array<u32, KR>,
  allowed: array<bool, KR>,
  any: bool,
}

fn key_rows(blk: Block) -> KeyRows {
  var keys: KeyRows;
  for (var j = 0u; j < KR; j++) {
    keys.at[j] = kv_offset(blk, blk.h, blk.row0 + j);
    keys.allowed[j] = key_allowed(blk, blk.row0 + j);
    keys.any = keys.any || keys.allowed[j];
  }
  return keys;
}

// The key-value head that query head h reads.
fn kv_head(h: u32) -> u32 {
  return h / (p.heads / p.kvHeads);
}

// Index of (b, query head h, t) in the whole [B, heads, T] statistics; t is clamped because the
// tiles read the statistics of all their rows, valid or not.
fn stat_index(blk: Block, h: u32, t: u32) -> u32 {
  return ((p.b0 + blk.b) * p.heads + h) * p.T + min(t, p.T - 1u);
}

fn key_allowed(blk: Block, t: u32) -> bool {
  if (t >= blk.len) { return false; }
  if (!HAS_MASK) { return true; }
  return keyMask[(p.b0 + blk.b) * p.T + t] != 0u;
}

// Dropout bits of a tile of nq ≤ 16 queries from q0 and nk ≤ 16 keys from k0: bit (key − k0) of
// word (query − q0) says whether probability (query, key) of the block's batch and query head h
// survives, for the live pairs (causal, key allowed); the other bits are 0. llvmpipe counts every
// iteration of a loop that stays a loop against its cap of ~65,535 an invocation, so the draws
// come four at a time (rand_u32x4) from a loop over the shorter side of the tile with the other
// side's four groups unrolled: a call counts ≤ 16 iterations, not one per pair. Unrolling the
// whole tile instead (256 generators) took LLVM about a minute to compile each kernel.
// keep_bits_by_query loops over the queries (for tiles of few queries), keep_bits_by_key over
// the keys (few keys); both give the same bits. A call counts one iteration per query (or key),
// plus, with a key mask, up to 16 in live_keys.

// Keys k0 + j (j < 16) that are below k0 + nk and allowed, as bits j. Without a key mask no loop:
// with one, up to 16 counted iterations.
fn live_keys(blk: Block, k0: u32, nk: u32) -> u32 {
  let n = min(nk, select(0u, blk.len - k0, blk.len > k0));
  if (!HAS_MASK) { return select((1u << n) - 1u, 0xFFFFu, n >= 16u); }
  var live = 0u;
  for (var j = 0u; j < n; j++) {
    if (key_allowed(blk, k0 + j)) { live |= 1u << j; }
  }
  return live;
}

// Keys k0 + j with j ≤ query − k0 (causal), as bits j.
fn causal_keys(query: u32, k0: u32) -> u32 {
  if (query < k0) { return 0u; }
  return select((2u << (query - k0)) - 1u, 0xFFFFFFFFu, query - k0 >= 31u);
}

// Bits 4c .. 4c + 3 of a query's word: whether the draws at counters first + 4c .. + 3 survive
// (zero from key nk on).
fn kept_quad(first: vec4u, c: u32, nk: u32) -> u32 {
  if (4u * c >= nk) { return 0u; }
  let kept = rand_u32x4(p.seed, p.step, first + vec4u(4u * c)) >= vec4u(p.threshold);
  return (select(0u, 1u, kept.x) | select(0u, 2u, kept.y) | select(0u, 4u, kept.z) |
    select(0u, 8u, kept.w)) << (4u * c);
}

// Whether pairs (q0 + 4c .. + 3, key) survive and are live (causal, below qEnd).
fn kept_by_key(base: u32, q0: u32, c: u32, nq: u32, qEnd: u32, key: u32) -> vec4<bool> {
  if (4u * c >= nq) { return vec4<bool>(false); }
  let query = vec4u(q0 + 4u * c) + vec4u(0u, 1u, 2u, 3u);
  let draws = rand_u32x4(p.seed, p.step, (vec4u(base) + query) * p.T + vec4u(key));
  return (draws >= vec4u(p.threshold)) & (query >= vec4u(key)) & (query < vec4u(qEnd));
}

// The four groups of draws are written out, not looped over: NIR keeps a loop around the
// generator, and llvmpipe would count its iterations.
fn keep_bits_by_query(blk: Block, h: u32, q0: u32, nq: u32, k0: u32, nk: u32) -> array<u32, 16> {
  var bits: array<u32, 16>;
  if (!HAS_DROPOUT) { return bits; }
  let live = live_keys(blk, k0, nk);
  let base = ((p.b0 + blk.b) * p.heads + h) * p.T;
  for (var query = q0; query < min(q0 + nq, blk.len); query++) {
    let first = vec4u((base + query) * p.T + k0) + vec4u(0u, 1u, 2u, 3u);
    let word = kept_quad(first, 0u, nk) | kept_quad(first, 1u, nk) | kept_quad(first, 2u, nk) |
      kept_quad(first, 3u, nk);
    bits[query - q0] = word & live & causal_keys(query, k0);
  }
  return bits;
}

fn keep_bits_by_key(blk: Block, h: u32, q0: u32, nq: u32, k0: u32, nk: u32) -> array<u32, 16> {
  var bits: array<u32, 16>;
  if (!HAS_DROPOUT) { return bits; }
  let base = ((p.b0 + blk.b) * p.heads + h) * p.T;
  let qEnd = min(q0 + nq, blk.len);
  var w0 = vec4u(0u);
  var w1 = vec4u(0u);
  var w2 = vec4u(0u);
  var w3 = vec4u(0u);
  for (var key = k0; key < min(k0 + nk, blk.len); key++) {
    if (!key_allowed(blk, key)) { continue; }
    let bit = vec4u(1u << (key - k0));
    w0 |= select(vec4u(0u), bit, kept_by_key(base, q0, 0u, nq, qEnd, key));
    w1 |= select(vec4u(0u), bit, kept_by_key(base, q0, 1u, nq, qEnd, key));
    w2 |= select(vec4u(0u), bit, kept_by_key(base, q0, 2u, nq, qEnd, key));
    w3 |= select(vec4u(0u), bit, kept_by_key(base, q0, 3u, nq, qEnd, key));
  }
  for (var i = 0u; i < 4u; i++) {
    bits[i] = w0[i];
    bits[4u + i] = w1[i];
    bits[8u + i] = w2[i];
    bits[12u + i] = w3[i];
  }
  return bits;
}

// The dropout factor of pair (q0 + i, k0 + j) of a tile: keepScale or 0.
fn drop_factor(bits: array<u32, 16>, i: u32, j: u32) -> f32 {
  return select(0.0, p.keepScale, ((bits[i] >> j) & 1u) != 0u);
}
