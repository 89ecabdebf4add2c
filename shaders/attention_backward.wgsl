// Causal attention backward, recomputing the probabilities P = exp(q·k·scale − lse) tile by tile
// (FlashAttention-2 style, without atomics):
//   delta: Δ_i = dO_i · O_i per query row, stored next to lse_i in stats.
//   dq:    one invocation per QR query rows walks their keys:  dq_i = scale Σ_j dS_ij k_j.
//   dkv:   one invocation per KR key rows of a key-value head walks their queries in every query
//          head that reads it: dv_j = Σ_i P_ij M_ij dO_i, dk_j = scale Σ_i dS_ij q_i, where
//          dS_ij = P_ij (M_ij dO_i · v_j − Δ_i) (sums over the group's heads too).
// M_ij is the dropout factor (1 without dropout); Δ_i = dO_i · O_i holds with it too, since
// Σ_j P_ij M_ij dO_i · v_j = dO_i · O_i.
// Rows without an allowed key (dq_rows) and masked key rows (dkv) are never written: with a key
// mask dq, dk and dv must be zero on entry. Without one, every row is written.
// With DQ_PARTS, dkv also writes block kb's share of dq, scale Σ_{j in kb} dS_ij k_j, into part kb
// of dq_parts, and `dq_sum` adds the parts up in key-block order: dS is then computed once
// instead of twice (dq_rows recomputes it), for KR·dh more FMAs per tile. Every part dq_sum reads
// is written, except with a key mask (blocks of masked keys) or packed rows (dq_sum reads parts
// of key blocks past a sequence's end): then dq_parts must be zero on entry.
@group(0) @binding(6) var<storage, read> dout: array<Vec>;
@group(0) @binding(7) var<storage, read> out: array<Vec>;
@group(0) @binding(8) var<storage, read> lse: array<f32>;
// [B, heads, T]: (lse, Δ) per query row, one load for both.
@group(0) @binding(9) var<storage, read_write> stats: array<vec2f>;
@group(0) @binding(10) var<storage, read_write> dq: array<Vec>;
@group(0) @binding(11) var<storage, read_write> dk: array<Vec>;
@group(0) @binding(12) var<storage, read_write> dv: array<Vec>;
// [ceil(T / KR), window of q]: see DQ_PARTS.
@group(0) @binding(13) var<storage, read_write> dq_parts: array<Vec>;

override DQ_PARTS: bool = false;

// One invocation per (batch, head, query row).
@compute @workgroup_size(WG)
fn delta(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = block_of(gid, nwg, 1u, false, p.heads);
  if (!blk.valid) { return; }
  let at = q_offset(blk, blk.h, blk.row0);
  var sum = 0.0;
  for (var d = 0u; d < p.dh / VW; d++) { sum += vdot(dout[at + d], out[at + d]); }
  let s = stat_index(blk, blk.h, blk.row0);
  stats[s] = vec2f(lse[s], sum);
}

struct RowTiles {
  s: array<array<f32, KC>, QR>,
  dp: array<array<f32, KC>, QR>,
}

// s[i][j] = q_i · k_j and dp[i][j] = dO_i · v_j for QR query rows and KC keys; rows past the
// end and masked keys are not fetched.
fn row_tiles(
  qAt: array<u32, QR>,
  qOk: array<bool, QR>,
  kAt: array<u32, KC>,
  kOk: array<bool, KC>,
) -> RowTiles {
  var t: RowTiles;
  for (var d = 0u; d < p.dh / VW; d++) {
    var qd: array<Vec, QR>;
    var gd: array<Vec, QR>;
    var kd: array<Vec, KC>;
    var vd: array<Vec, KC>;
    for (var i = 0u; i < QR; i++) {
      if (qOk[i]) {
        qd[i] = q[qAt[i] + d];
        gd[i] = dout[qAt[i] + d];
      }
    }
    for (var j = 0u; j < KC; j++) {
      if (kOk[j]) {
        kd[j] = k[kAt[j] + d];
        vd[j] = v[kAt[j] + d];
      }
    }
    for (var i = 0u; i < QR; i++) {
      for (var j = 0u; j < KC; j++) {
        t.s[i][j] += vdot(qd[i], kd[j]);
        t.dp[i][j] += vdot(gd[i], vd[j]);
      }
    }
  }
  return t;
}

@compute @workgroup_size(WG)
fn dq_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = block_of(gid, nwg, QR, true, p.heads);
  if (!blk.valid) { return; }
  let g = kv_head(blk.h);
  var qAt: array<u32, QR>;
  var qOk: array<bool, QR>;
  var rowLse: array<f32, QR>;
  var rowDelta: array<f32, QR>;
  for (var i = 0u; i < QR; i++) {
    qAt[i] = q_offset(blk, blk.h, blk.row0 + i);
    qOk[i] = blk.row0 + i < blk.len;
    let st = stats[stat_index(blk, blk.h, blk.row0 + i)];
    rowLse[i] = st.x;
    rowDelta[i] = st.y;
  }
  let keyEnd = min(blk.len, blk.row0 + QR);
  // dq is zero on entry: the first tile that reaches a row need not read it back.
  var started = false;
  for (var c0 = 0u; c0 < keyEnd; c0 += KC) {
    var kAt: array<u32, KC>;
    var allowed: array<bool, KC>;
    var any = false;
    for (var j = 0u; j < KC; j++) {
      kAt[j] = kv_offset(blk, g, c0 + j);
      allowed[j] = c0 + j < keyEnd && key_allowed(blk, c0 + j);
      any = any || allowed[j];
    }
    if (!any) { continue; }
    var t = row_tiles(qAt, qOk, kAt, allowed);
    let bits = keep_bits_by_query(blk, blk.h, blk.row0, QR, c0, KC);
    // t.s becomes scale · dS.
    for (var i = 0u; i < QR; i++) {
      for (var j = 0u; j < KC; j++) {
        let live = allowed[j] && c0 + j <= blk.row0 + i;
        let prob = select(0.0, exp(t.s[i][j] * p.scale - rowLse[i]), live);
        var dp = t.dp[i][j];
        if (HAS_DROPOUT) { dp *= drop_factor(bits, i, j); }
        t.s[i][j] = prob * (dp - rowDelta[i]) * p.scale;
      }
    }
    for (var d = 0u; d < p.dh / VW; d++) {
      var kd: array<Vec, KC>;
      for (var j = 0u; j < KC; j++) {
        if (allowed[j]) { kd[j] = k[kAt[j] + d]; }
      }
      for (var i = 0u; i < QR; i++) {
        if (qOk[i]) {
          var acc = Vec(0.0);
          if (started) { acc = dq[qAt[i] + d]; }
          for (var j = 0u; j < KC; j++) { acc = fma(Vec(t.s[i][j]), kd[j], acc); }
          dq[qAt[i] + d] = acc;
        }
      }
    }
    started = true;
  }
}

// dq = Σ_kb dq_parts[kb], in key-block order; one invocation per Vec of the q window. A query
// at position t sees no key block past t / KR (packed rows: their position is not at hand).
@compute @workgroup_size(WG)
fn dq_sum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.partStride) { return; }
  var blocks = (p.T + KR - 1u) / KR;
  if (!PACKED) { blocks = (i * VW / p.D) % p.T / KR + 1u; }
  var acc = Vec(0.0);
  for (var kb = 0u; kb < blocks; kb++) { acc += dq_parts[kb * p.partStride + i]; }
  dq[i] = acc;
}
