// Causal attention forward with a streaming softmax: an invocation owns QR query rows of one
// (batch, head) and walks their keys KC at a time, keeping the running max and sum per row, so no
// T × T scores exist anywhere; with HAS_DROPOUT the output is Σ_j P_ij · drop_ij · v_j. out must
// be zero on entry (rows without an allowed key stay zero); it holds the normalised output after
// every key tile. lse receives max + log(sum) per row, BIG for rows without an allowed key.
@group(0) @binding(6) var<storage, read_write> out: array<Vec>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;

// s[i][j] = q_i · k_j over the head's dimensions. Rows past the end and masked keys are not
// fetched (their scores stay 0 and are never used): short sequences waste no loads on the tile.
fn tile_scores(
  qAt: array<u32, QR>,
  qOk: array<bool, QR>,
  kAt: array<u32, KC>,
  kOk: array<bool, KC>,
) -> array<array<f32, KC>, QR> {
  var s: array<array<f32, KC>, QR>;
  for (var d = 0u; d < p.dh / VW; d++) {
    var qd: array<Vec, QR>;
    var kd: array<Vec, KC>;
    for (var i = 0u; i < QR; i++) {
      if (qOk[i]) { qd[i] = q[qAt[i] + d]; }
    }
    for (var j = 0u; j < KC; j++) {
      if (kOk[j]) { kd[j] = k[kAt[j] + d]; }
    }
    for (var i = 0u; i < QR; i++) {
      for (var j = 0u; j < KC; j++) { s[i][j] += vdot(qd[i], kd[j]); }
    }
  }
  return s;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = block_of(gid, nwg, QR, true, p.heads);
  let g = kv_head(blk.h);
  if (!blk.valid) { return; }
  var qAt: array<u32, QR>;
  var qOk: array<bool, QR>;
  var m: array<f32, QR>;
  var l: array<f32, QR>;
  for (var i = 0u; i < QR; i++) {
    qAt[i] = q_offset(blk, blk.h, blk.row0 + i);
    qOk[i] = blk.row0 + i < blk.len;
    m[i] = -BIG;
  }
  let keyEnd = min(blk.len, blk.row0 + QR);
  for (var c0 = 0u; c0 < keyEnd; c0 += KC) {
    var kAt: array<u32, KC>;
    var allowed: array<bool, KC>;
    var any = false;
    for (var j = 0u; j < KC; j++) {
      kAt[j] = kv_offset(blk, g, c0 + j);
      allowed[j] = c0 + j < keyEnd && key_allowed(blk, c0 + j);
      any = any || allowed[j];
    }
    // Left padding: whole tiles of masked keys cost one mask read.
    if (!any) { continue; }
    var s = tile_scores(qAt, qOk, kAt, allowed);
    let bits = keep_bits_by_query(blk, blk.h, blk.row0, QR, c0, KC);
    // After this loop s holds the tile's probabilities already divided by the new row sum, and
    // keep[i] rescales the output accumulated so far to the new max and sum.
    var keep: array<f32, QR>;
    for (var i = 0u; i < QR; i++) {
      let row = blk.row0 + i;
      var tileMax = -BIG;
      for (var j = 0u; j < KC; j++) {
        s[i][j] *= p.scale;
        if (allowed[j] && c0 + j <= row) { tileMax = max(tileMax, s[i][j]); }
      }
      let mNew = max(m[i], tileMax);
      let alpha = exp(m[i] - mNew);
      var sum = 0.0;
      for (var j = 0u; j < KC; j++) {
        let e = select(0.0, exp(s[i][j] - mNew), allowed[j] && c0 + j <= row);
        s[i][j] = e;
        sum += e;
      }
      let lNew = l[i] * alpha + sum;
      let inv = select(0.0, 1.0 / lNew, lNew > 0.0);
      keep[i] = l[i] * alpha * inv;
      // The running max and sum are those of the undropped softmax; only the output sees the
      // dropped probabilities, as out is linear in them.
      for (var j = 0u; j < KC; j++) {
        s[i][j] *= inv;
        if (HAS_DROPOUT) { s[i][j] *= drop_factor(bits, i, j); }
      }
      m[i] = mNew;
      l[i] = lNew;
    }
    for (var d = 0u; d < p.dh / VW; d++) {
      var vd: array<Vec, KC>;
      for (var j = 0u; j < KC; j++) {
        if (allowed[j]) { vd[j] = v[kAt[j] + d]; }
      }
      for (var i = 0u; i < QR; i++) {
        if (qOk[i]) {
          var acc = Vec(0.0);
          if (keep[i] != 0.0) { acc = out[qAt[i] + d] * keep[i]; }
          for (var j = 0u; j < KC; j++) { acc = fma(Vec(s[i][j]), vd[j], acc); }
          out[qAt[i] + d] = acc;
        }
      }
    }
  }
  for (var i = 0u; i < QR; i++) {
    if (qOk[i]) {
      lse[stat_index(blk, blk.h, blk.row0 + i)] = select(BIG, m[i] + log(l[i]), l[i] > 0.0);
    }
  }
}
