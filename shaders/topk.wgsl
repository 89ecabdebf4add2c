// Top-k item ids per row of a score matrix, sorted by score descending with ties broken by the
// lower id, without reading the scores back. One workgroup (256 invocations) per row (segment):
//  1. Radix select on order-preserving u32 keys: 4 passes of 8 bits, each a 256-bin histogram
//     (workgroup atomicAdd on integers, so counts are exact whatever the order) of the keys that
//     share the digits chosen so far. This finds the k-th largest key `thr` and how many items with
//     key == thr belong to the top k (`need`; every item with key > thr does).
//  2. Collection: each invocation owns a CONTIGUOUS range of ids; an exclusive prefix sum of the
//     per-invocation counts gives every candidate a fixed slot, and the `need` threshold items with
//     the lowest ids are the ones taken. Slot positions, hence the result, are deterministic.
//  3. A bitonic sort of the ≤ 128 candidates in workgroup memory by (key desc, id asc).
// Rows shorter than k (keff = min(k, cols)) are padded with -1. The output [rows, k] of the bound
// rows starts `out_shift` elements into its binding (its window begins at an aligned offset).
// Entry topk_segments (a software adapter's loop cap): workgroup g takes row g / segs and its
// columns [s · width, min((s + 1) · width, cols)) for s = g % segs, and writes that segment's
// keff top ids (offset to the segment's start, no -1 padding) at s · k of its output row of
// `out_stride` ids. Entry topk (whole rows) ignores width, segs and out_stride; it is its own
// entry point because computing the segment per workgroup made llvmpipe's loops ~30% slower.
struct Params {
  rows: u32, cols: u32, k: u32, out_shift: u32, width: u32, segs: u32, out_stride: u32
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;

const WG: u32 = 256u;
const KMAX: u32 = 128u;
// Sorts after every real candidate: the smallest key and an id no item has.
const SENTINEL_ID: u32 = 0xffffffffu;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> gt_scan: array<u32, WG>;
var<workgroup> eq_scan: array<u32, WG>;
var<workgroup> cand_key: array<u32, KMAX>;
var<workgroup> cand_id: array<u32, KMAX>;
// Digits of the threshold chosen so far, and how many items equal to the prefix are still needed.
var<workgroup> sel_prefix: u32;
var<workgroup> sel_need: u32;

// Monotone map of f32 bits to u32: a > b as floats ⇔ key(a) > key(b) (NaNs order by their bits);
// -0 is folded into +0 so that the two compare equal, as floats do.
fn key(bits: u32) -> u32 {
  let b = select(bits, 0u, bits == 0x80000000u);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Whether candidate (ka, ia) comes before (kb, ib) in the output order.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(WG)
fn topk(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  top_k(r, 0u, p.cols, p.out_shift + r * p.k, true, lid);
}

@compute @workgroup_size(WG)
fn topk_segments(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  let r = wg / p.segs;
  if (r >= p.rows) { return; }
  let seg = wg % p.segs;
  let col0 = seg * p.width;
  let at = p.out_shift + r * p.out_stride + seg * p.k;
  top_k(r, col0, min(p.width, p.cols - col0), at, false, lid);
}

// The top min(k, n) ids of row r's columns [col0, col0 + n), written from out[at]; `pad` fills
// the rest of the k slots with -1.
fn top_k(r: u32, col0: u32, n: u32, at: u32, pad: bool, lid: u32) {
  let keff = min(p.k, n);
  let base = r * p.cols + col0;
  if (lid < KMAX) {
    cand_key[lid] = 0u;
    cand_id[lid] = SENTINEL_ID;
  }
  if (lid == 0u) {
    sel_prefix = 0u;
    sel_need = keff;
  }

  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    let prefix = sel_prefix;
    // The digits above `shift` are fixed; a shift by 32 would wrap in WGSL, hence the select.
    let fixed = select(0xffffffffu << (shift + 8u), 0u, round == 0u);
    for (var c = lid; c < n; c += WG) {
      let k = key(scores[base + c]);
      if ((k & fixed) == prefix) { atomicAdd(&hist[(k >> shift) & 0xffu], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      // Walk the digits from the top until the bin holding the need-th largest remaining key.
      var need = sel_need;
      var d = 255u;
      loop {
        let h = atomicLoad(&hist[d]);
        if (h >= need || d == 0u) { break; }
        need -= h;
        d -= 1u;
      }
      sel_prefix = prefix | (d << shift);
      sel_need = need;
    }
    workgroupBarrier();
  }
  let thr = sel_prefix;
  let need = sel_need;
  let ngt = keff - need;

  let chunk = (n + WG - 1u) / WG;
  let lo = min(lid * chunk, n);
  let hi = min(lo + chunk, n);
  var g = 0u;
  var q = 0u;
  for (var c = lo; c < hi; c++) {
    let k = key(scores[base + c]);
    g += select(0u, 1u, k > thr);
    q += select(0u, 1u, k == thr);
  }
  gt_scan[lid] = g;
  eq_scan[lid] = q;
  workgroupBarrier();
  // Hillis–Steele inclusive scan of both counts.
  for (var s = 1u; s < WG; s *= 2u) {
    var a = 0u;
    var b = 0u;
    if (lid >= s) {
      a = gt_scan[lid - s];
      b = eq_scan[lid - s];
    }
    workgroupBarrier();
    gt_scan[lid] += a;
    eq_scan[lid] += b;
    workgroupBarrier();
  }
  var gpos = gt_scan[lid] - g;
  var qpos = eq_scan[lid] - q;
  // Most invocations own no candidate at all and skip the second read of their range.
  if (g > 0u || (q > 0u && qpos < need)) {
    for (var c = lo; c < hi; c++) {
      let k = key(scores[base + c]);
      if (k > thr && gpos < ngt) {
        cand_key[gpos] = k;
        cand_id[gpos] = c;
        gpos++;
      } else if (k == thr && qpos < need) {
        cand_key[ngt + qpos] = k;
        cand_id[ngt + qpos] = c;
        qpos++;
      }
    }
  }
  workgroupBarrier();

  for (var size = 2u; size <= KMAX; size <<= 1u) {
    for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
      let j = lid ^ stride;
      if (lid < KMAX && j > lid) {
        let ki = cand_key[lid];
        let ii = cand_id[lid];
        let kj = cand_key[j];
        let ij = cand_id[j];
        // Blocks with (lid & size) == 0 are sorted in output order, the others reversed, so that
        // each merge sees a bitonic sequence; the last stage (size = KMAX) sorts everything.
        if (before(kj, ij, ki, ii) == ((lid & size) == 0u)) {
          cand_key[lid] = kj;
          cand_id[lid] = ij;
          cand_key[j] = ki;
          cand_id[j] = ii;
        }
      }
      workgroupBarrier();
    }
  }
  if (lid < select(keff, p.k, pad)) {
    out[at + lid] = select(-1, i32(cand_id[lid] + col0), lid < keff);
  }
}
