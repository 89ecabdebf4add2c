// Fused sampled softmax cross-entropy (CCE-): each position scores its target and K negatives
// that negative_id draws on the fly, keeping a running max and sum (online log-sum-exp), so no
// N×K logits, ids or gradients exist. Needs random.wgsl and negatives.wgsl prepended and
// sparse_gathered_dot.wgsl (its logits) appended.
//
// The host cuts the work into passes: one per window of table rows [row0, row0 + rows) (the table
// and its gradient may exceed one binding; ids outside the window are skipped) and range of slots
// [lo, hi). A pass is short because llvmpipe ends any invocation's loops after 65,535
// iterations in all, without an error. Sums over slots run in blocks of BLOCK slots added into
// the total, so their rounding error grows with BLOCK + K / BLOCK rather than K. The target's
// logit waits in `loss` until the last pass turns it into the loss.
//
// Rows are read from storage where they are used: llvmpipe compiles private arrays indexed by a
// loop counter slowly (tens of seconds for rows of d = 64) and indexes them slowly.
struct Params {
  n: u32,
  d: u32,
  kind: u32,
  k: u32,
  items: u32,
  seed: u32,
  row0: u32,
  rows: u32,
  first: u32,
  last: u32,
  // logQ correction added to every negative's logit (less log q_id with LOG_Q_PER_ID).
  shift: f32,
  // Backward: record the negatives' table-gradient entries for cce_table_grad.wgsl
  // (per-position negatives).
  scatter: u32,
  // Item-major kernels: entries [start, start + count) of their id list, `uniques` ids in all.
  start: u32,
  count: u32,
  uniques: u32,
  // This pass's share of the loop: slots, positions, or a target's positions (CSR entries).
  lo: u32,
  hi: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<i32>;
// [2, n]: each position's LSE, then (copied in by the backward) its upstream gradient.
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;
// Per position: the forward's running (max, sum) [n, 2]; the backward's block sum of dh [n, d].
@group(0) @binding(7) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(8) var<storage, read_write> dh: array<f32>;
// The table gradient's window.
@group(0) @binding(9) var<storage, read_write> dtable: array<f32>;
// Shared negatives: (id, multiplicity) per distinct id, ascending.
@group(0) @binding(10) var<storage, read> shared_ids: array<vec2u>;
// Targets: distinct ids ascending (uniques), CSR offsets (uniques + 1), then positions.
@group(0) @binding(11) var<storage, read> target_csr: array<u32>;
// log q_i of ids i = 1..items (at i − 1), read with LOG_Q_PER_ID; a placeholder otherwise.
@group(0) @binding(12) var<storage, read> negative_log_q: array<f32>;
// With `scatter` (cce_table_grad.wgsl made the cursors and sums the buckets): each id's bucket
// write cursor [items + 2], the bits of its largest |coef|·max|h_n| [items + 1], and the
// buckets' entries, position and coefficient [N·K at most].
@group(0) @binding(13) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(14) var<storage, read_write> rowmax: array<atomic<u32>>;
@group(0) @binding(15) var<storage, read_write> list: array<u32>;
@group(0) @binding(16) var<storage, read_write> list_coefs: array<f32>;

// The sampler's probabilities differ per id (popularity), and so does its logQ correction
// −log(K·q_id); off, every negative adds the one constant p.shift and never reads negative_log_q.
override LOG_Q_PER_ID: bool = false;

const NEG_HUGE: f32 = -3.4e38;
const BLOCK: u32 = 64u;

// What negative `id` adds to its logit: the logQ correction (0 without one).
fn negative_shift(id: u32) -> f32 {
  if (LOG_Q_PER_ID) { return p.shift - negative_log_q[id - 1u]; }
  return p.shift;
}

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

fn in_window(id: u32) -> bool {
  return id - p.row0 < p.rows;
}

fn dloss(n: u32) -> f32 {
  return stats[p.n + n];
}

// The gathered dot's state (sparse_gathered_dot.wgsl): h_n against the table row a logit picks.
struct Gather { h: u32, row: u32, c: u32 }

fn gather_a(g: ptr<function, Gather>, c: u32) -> f32 {
  return h[(*g).h + c];
}

fn gather_next(g: ptr<function, Gather>) -> f32 {
  let v = table[(*g).row + (*g).c];
  (*g).c += 1u;
  return v;
}

// h_n · table row (window-relative).
fn logit(n: u32, row: u32) -> f32 {
  var g = Gather(n * p.d, row * p.d, 0u);
  return gathered_dot(&g, p.d);
}

// scratch_n += coef · table row.
fn add_to_scratch(n: u32, row: u32, coef: f32) {
  let hb = n * p.d;
  let tb = row * p.d;
  var c = 0u;
  for (; c + 4u <= p.d; c += 4u) {
    scratch[hb + c] = fma(coef, table[tb + c], scratch[hb + c]);
    scratch[hb + c + 1u] = fma(coef, table[tb + c + 1u], scratch[hb + c + 1u]);
    scratch[hb + c + 2u] = fma(coef, table[tb + c + 2u], scratch[hb + c + 2u]);
    scratch[hb + c + 3u] = fma(coef, table[tb + c + 3u], scratch[hb + c + 3u]);
  }
  for (; c < p.d; c++) { scratch[hb + c] = fma(coef, table[tb + c], scratch[hb + c]); }
}

// dh_n += scratch_n, and scratch_n = 0 for the next block.
fn flush_scratch(n: u32) {
  let end = (n + 1u) * p.d;
  for (var c = n * p.d; c < end; c++) {
    dh[c] += scratch[c];
    scratch[c] = 0.0;
  }
}

// dtable row += coef · h_n (window-relative row; no other invocation writes it in this pass).
fn add_to_dtable(row: u32, n: u32, coef: f32) {
  let hb = n * p.d;
  let tb = row * p.d;
  var c = 0u;
  for (; c + 4u <= p.d; c += 4u) {
    dtable[tb + c] = fma(coef, h[hb + c], dtable[tb + c]);
    dtable[tb + c + 1u] = fma(coef, h[hb + c + 1u], dtable[tb + c + 1u]);
    dtable[tb + c + 2u] = fma(coef, h[hb + c + 2u], dtable[tb + c + 2u]);
    dtable[tb + c + 3u] = fma(coef, h[hb + c + 3u], dtable[tb + c + 3u]);
  }
  for (; c < p.d; c++) { dtable[tb + c] = fma(coef, h[hb + c], dtable[tb + c]); }
}

// Online log-sum-exp: one exp per value unless the value raises the max.
struct Running { m: f32, z: f32 }

fn running_add(r: Running, v: f32) -> Running {
  if (v > r.m) { return Running(v, fma(r.z, exp(r.m - v), 1.0)); }
  return Running(r.m, r.z + exp(v - r.m));
}

fn running_merge(a: Running, b: Running) -> Running {
  let m = max(a.m, b.m);
  return Running(m, a.z * exp(a.m - m) + b.z * exp(b.m - m));
}

fn spec() -> NegativeSpec {
  return NegativeSpec(p.kind, p.k, p.items, p.seed);
}

// The target counts once: in the first slot range of the window that holds it.
fn target_in_pass(target_id: u32) -> bool {
  return p.lo == 0u && in_window(target_id);
}

// An invocation per position; `scratch` carries its running (max, sum) from pass to pass.
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = flat_index(gid, nwg);
  if (n >= p.n) { return; }
  var run = Running(NEG_HUGE, 0.0);
  let target_id = u32(targets[n]);
  if (target_in_pass(target_id)) {
    let s = logit(n, target_id - p.row0);
    loss[n] = s;
    run = running_add(run, s);
  }
  let negatives = spec();
  for (var block = p.lo; block < p.hi; block += BLOCK) {
    var part = Running(NEG_HUGE, 0.0);
    for (var slot = block; slot < min(block + BLOCK, p.hi); slot++) {
      let id = negative_id(negatives, n, slot);
      if (id != target_id && in_window(id)) {
        part = running_add(part, logit(n, id - p.row0) + negative_shift(id));
      }
    }
    run = running_merge(run, part);
  }
  if (p.first == 0u) { run = running_merge(Running(scratch[2u * n], scratch[2u * n + 1u]), run); }
  if (p.last != 0u) {
    let l = run.m + log(run.z);
    stats[n] = l;
    loss[n] = l - loss[n];
  } else {
    scratch[2u * n] = run.m;
    scratch[2u * n + 1u] = run.z;
  }
}

// max |h_n[c]|: bounds what entry (n, ·)'s coefficient adds to any column of a table row.
fn max_abs_h(n: u32) -> f32 {
  var m = 0.0;
  for (var c = n * p.d; c < (n + 1u) * p.d; c++) { m = max(m, abs(h[c])); }
  return m;
}

// Appends a negative's table-gradient entry to its id's bucket and raises the id's bound.
fn record_entry(n: u32, id: u32, coef: f32, h_max: f32) {
  let j = atomicAdd(&counts[id], 1u);
  list[j] = n;
  list_coefs[j] = coef;
  atomicMax(&rowmax[id], bitcast<u32>(abs(coef) * h_max));
}

// dh of each position (dh and scratch start at zero; passes add), and with `scatter` the
// entries of the negatives' share of the table gradient (summed by cce_table_grad.wgsl). The
// targets' share is left to target_table_grad, which sums it in a fixed order.
@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = flat_index(gid, nwg);
  if (n >= p.n) { return; }
  let l = stats[n];
  let g = dloss(n);
  let target_id = u32(targets[n]);
  if (target_in_pass(target_id)) {
    let row = target_id - p.row0;
    add_to_scratch(n, row, g * (exp(logit(n, row) - l) - 1.0));
  }
  let negatives = spec();
  var h_max = 0.0;
  if (p.scatter != 0u) { h_max = max_abs_h(n); }
  for (var block = p.lo; block < p.hi; block += BLOCK) {
    for (var slot = block; slot < min(block + BLOCK, p.hi); slot++) {
      let id = negative_id(negatives, n, slot);
      if (id != target_id && in_window(id)) {
        let row = id - p.row0;
        let coef = g * exp(logit(n, row) + negative_shift(id) - l);
        add_to_scratch(n, row, coef);
        if (p.scatter != 0u) { record_entry(n, id, coef, h_max); }
      }
    }
    flush_scratch(n);
  }
}

// Shared negatives' table gradient without atomics: an invocation per distinct id walks the
// positions [lo, hi) in order, its multiplicity standing for the slots that drew it.
@compute @workgroup_size(64)
fn shared_table_grad(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let u = flat_index(gid, nwg);
  if (u >= p.count) { return; }
  let entry = shared_ids[p.start + u];
  let row = entry.x - p.row0;
  let weight = f32(entry.y);
  for (var n = p.lo; n < p.hi; n++) {
    if (u32(targets[n]) != entry.x) {
      let coef = weight * dloss(n) * exp(logit(n, row) + negative_shift(entry.x) - stats[n]);
      add_to_dtable(row, n, coef);
    }
  }
}

// The targets' share of the table gradient: an invocation per distinct target sums its
// positions in ascending order, entries [lo, hi) of its list in this pass.
@compute @workgroup_size(64)
fn target_table_grad(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let u = p.start + flat_index(gid, nwg);
  if (u >= p.start + p.count) { return; }
  let row = target_csr[u] - p.row0;
  let offsets = p.uniques;
  let positions = 2u * p.uniques + 1u;
  let begin = target_csr[offsets + u];
  let end = min(target_csr[offsets + u + 1u], begin + p.hi);
  for (var q = begin + p.lo; q < end; q++) {
    let n = target_csr[positions + q];
    add_to_dtable(row, n, dloss(n) * (exp(logit(n, row) - stats[n]) - 1.0));
  }
}
