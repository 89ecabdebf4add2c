// Fused full-catalogue softmax cross-entropy (Cut Cross-Entropy) over items 1..C: the N×C logits
// are never stored. Item 0 is padding: the host starts the walks over items at 1, and grad_rows
// leaves its gradient row at zero. The forward walks tiles of TM positions × TN items with an
// online log-sum-exp per row, the item range cut into splits whose partial (max, sum) a second
// kernel merges. The backward recomputes each tile's logits and turns them into gradients in
// place: dh position-major and dtable item-major, every output row summed by one invocation in a
// fixed order (no atomics). TM and TN come from the host.
//
// llvmpipe runs the 8 lanes of a workgroup as one SIMD vector: lanes own different rows and walk
// the same tiles of the other operand, so those loads are one address for all lanes. Tiles live
// in registers (loops of constant length unroll); rows are read from storage where they are used,
// as llvmpipe compiles private arrays indexed by a loop counter slowly and indexes them slowly.
//
// The host cuts the work into passes: one per window of table rows [row0, row0 + rows) (the table
// may exceed one binding) and range [lo, hi) of the operand walked, so that no invocation loops
// more than llvmpipe's 65,535 iterations (past them it silently leaves its loops). The forward
// carries (max, sum) per position across passes in `state`; the target's logit waits in `loss`
// until the last pass turns it into the loss.
struct Params {
  n: u32,
  d: u32,
  row0: u32,
  rows: u32,
  // The part of the walked operand in this pass: window-relative items (never item 0), or
  // positions.
  lo: u32,
  hi: u32,
  // Forward: items per split (a multiple of TN); split s starts at lo + s·span.
  span: u32,
  splits: u32,
  first: u32,
  last: u32,
  // Gradient filtering: a tile whose |p − onehot| are all below eps adds nothing.
  eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<i32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
// [splits, n, 2]: (max, sum) of each split's items for each position.
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
@group(0) @binding(8) var<storage, read> dloss: array<f32>;
// dh [n, d] (position-major) or the table gradient's window (item-major); both start at zero.
@group(0) @binding(9) var<storage, read_write> grad: array<f32>;

// The backward's roles: false, the invocation owns positions and walks items (dh); true, it
// owns items and walks positions (dtable).
override ITEM_MAJOR: bool = false;
// d is a multiple of 4: rows need no tail checks.
override ALIGNED: bool = false;

const WG: u32 = 8u;
const NEG_HUGE: f32 = -3.4e38;

alias Tile = array<array<f32, TN>, TM>;

// Columns c .. c + 3 of a row; zeros past d.
fn h4(row: u32, c: u32) -> vec4f {
  let base = row * p.d;
  let last = base + p.d - 1u;
  let at = base + c;
  if (ALIGNED) { return vec4f(h[at], h[at + 1u], h[at + 2u], h[at + 3u]); }
  return vec4f(
    h[at],
    select(0.0, h[min(at + 1u, last)], at + 1u <= last),
    select(0.0, h[min(at + 2u, last)], at + 2u <= last),
    select(0.0, h[min(at + 3u, last)], at + 3u <= last),
  );
}

fn table4(row: u32, c: u32) -> vec4f {
  let base = row * p.d;
  let last = base + p.d - 1u;
  let at = base + c;
  if (ALIGNED) { return vec4f(table[at], table[at + 1u], table[at + 2u], table[at + 3u]); }
  return vec4f(
    table[at],
    select(0.0, table[min(at + 1u, last)], at + 1u <= last),
    select(0.0, table[min(at + 2u, last)], at + 2u <= last),
    select(0.0, table[min(at + 3u, last)], at + 3u <= last),
  );
}

fn own4(row: u32, c: u32) -> vec4f {
  if (ITEM_MAJOR) { return table4(row, c); }
  return h4(row, c);
}

fn other4(row: u32, c: u32) -> vec4f {
  if (ITEM_MAJOR) { return h4(row, c); }
  return table4(row, c);
}

fn lane_index(wg: vec3u, groups: vec3u, lane: u32) -> u32 {
  return (wg.x + wg.y * groups.x) * WG + lane;
}

// Logits of own rows r0 .. r0 + TM − 1 (the last repeated past own_end) against the walked rows
// j0 .. j0 + TN − 1 (the last repeated past end).
fn logits(r0: u32, own_end: u32, j0: u32, end: u32) -> Tile {
  var s: Tile;
  for (var c = 0u; c < p.d; c += 4u) {
    var a: array<vec4f, TM>;
    for (var i = 0u; i < TM; i++) { a[i] = own4(min(r0 + i, own_end - 1u), c); }
    for (var j = 0u; j < TN; j++) {
      let b = other4(min(j0 + j, end - 1u), c);
      for (var i = 0u; i < TM; i++) { s[i][j] += dot(a[i], b); }
    }
  }
  return s;
}

// Running (max, sum) of TM positions over one split's items; also writes the target logits
// that fall in the split.
@compute @workgroup_size(WG)
fn forward_partial(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let n0 = lane_index(wg, groups, lane) * TM;
  if (n0 >= p.n) { return; }
  let begin = p.lo + wg.z * p.span;
  let end = min(begin + p.span, p.hi);
  var m: array<f32, TM>;
  var z: array<f32, TM>;
  for (var i = 0u; i < TM; i++) { m[i] = NEG_HUGE; }
  for (var j0 = begin; j0 < end; j0 += TN) {
    let s = logits(n0, p.n, j0, end);
    for (var i = 0u; i < TM; i++) {
      var top = m[i];
      for (var j = 0u; j < TN; j++) { top = max(top, select(NEG_HUGE, s[i][j], j0 + j < end)); }
      var sum = z[i] * exp(m[i] - top);
      for (var j = 0u; j < TN; j++) { sum += select(0.0, exp(s[i][j] - top), j0 + j < end); }
      m[i] = top;
      z[i] = sum;
    }
  }
  for (var i = 0u; i < TM; i++) {
    let n = n0 + i;
    if (n < p.n) {
      let at = 2u * (wg.z * p.n + n);
      partials[at] = m[i];
      partials[at + 1u] = z[i];
      let row = u32(targets[n]) - p.row0;
      if (row >= begin && row < end) {
        var s = 0.0;
        for (var c = 0u; c < p.d; c += 4u) { s += dot(h4(n, c), table4(row, c)); }
        loss[n] = s;
      }
    }
  }
}

// Merges a pass's splits into each position's running (max, sum); the last pass writes the LSE
// and the loss.
@compute @workgroup_size(64)
fn merge(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.n) { return; }
  var m = NEG_HUGE;
  var z = 0.0;
  if (p.first == 0u) {
    m = state[2u * n];
    z = state[2u * n + 1u];
  }
  for (var s = 0u; s < p.splits; s++) {
    let at = 2u * (s * p.n + n);
    let top = max(m, partials[at]);
    z = z * exp(m - top) + partials[at + 1u] * exp(partials[at] - top);
    m = top;
  }
  if (p.last != 0u) {
    let l = m + log(z);
    lse[n] = l;
    loss[n] = l - loss[n];
  } else {
    state[2u * n] = m;
    state[2u * n + 1u] = z;
  }
}

// What the softmax needs of a position: its LSE, upstream gradient and target.
struct Position { lse: f32, dloss: f32, target_id: u32 }

fn position(n: u32) -> Position {
  return Position(lse[n], dloss[n], u32(targets[n]));
}

// grad row += v at columns c .. c + 3 (those below d).
fn add_to_grad(row: u32, c: u32, v: vec4f) {
  let at = row * p.d + c;
  if (ALIGNED) {
    grad[at] += v.x;
    grad[at + 1u] += v.y;
    grad[at + 2u] += v.z;
    grad[at + 3u] += v.w;
    return;
  }
  grad[at] += v.x;
  if (c + 1u < p.d) { grad[at + 1u] += v.y; }
  if (c + 2u < p.d) { grad[at + 2u] += v.z; }
  if (c + 3u < p.d) { grad[at + 3u] += v.w; }
}

// Gradient rows of the own operand: Σ over the walked rows of g·row, with
// g = dloss·(softmax − onehot) recomputed tile by tile.
@compute @workgroup_size(WG)
fn grad_rows(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let own_end = select(p.n, p.rows, ITEM_MAJOR);
  let r0 = lane_index(wg, groups, lane) * TM;
  if (r0 >= own_end) { return; }
  var own_pos: array<Position, TM>;
  if (!ITEM_MAJOR) {
    for (var i = 0u; i < TM; i++) { own_pos[i] = position(min(r0 + i, p.n - 1u)); }
  }
  for (var j0 = p.lo; j0 < p.hi; j0 += TN) {
    var g = logits(r0, own_end, j0, p.hi);
    var keep = false;
    for (var j = 0u; j < TN; j++) {
      let live = j0 + j < p.hi;
      let other = min(j0 + j, p.hi - 1u);
      var other_pos: Position;
      if (ITEM_MAJOR) { other_pos = position(other); }
      for (var i = 0u; i < TM; i++) {
        var pos = other_pos;
        var item = p.row0 + r0 + i;
        if (!ITEM_MAJOR) {
          pos = own_pos[i];
          item = p.row0 + other;
        }
        let d = exp(g[i][j] - pos.lse) - select(0.0, 1.0, item == pos.target_id);
        let scored = live && item != 0u;
        keep = keep || (scored && abs(d) >= p.eps);
        g[i][j] = select(0.0, pos.dloss * d, scored);
      }
    }
    if (!keep) { continue; }
    for (var c = 0u; c < p.d; c += 4u) {
      var b: array<vec4f, TN>;
      for (var j = 0u; j < TN; j++) { b[j] = other4(min(j0 + j, p.hi - 1u), c); }
      for (var i = 0u; i < TM; i++) {
        var v = vec4f(0.0);
        for (var j = 0u; j < TN; j++) { v = fma(vec4f(g[i][j]), b[j], v); }
        if (r0 + i < own_end) { add_to_grad(r0 + i, c, v); }
      }
    }
  }
}
