// The dk/dv kernel of attention_backward.wgsl for any head dimension (dkv_rows; see there).
struct KeyTiles {
  s: array<array<f32, KQ>, KR>,
  dp: array<array<f32, KQ>, KR>,
}

// s[j][i] = k_j · q_i and dp[j][i] = v_j · dO_i for KR keys and KQ query rows; masked keys and
// rows past the end are not fetched.
fn key_tiles(
  kAt: array<u32, KR>,
  kOk: array<bool, KR>,
  qAt: array<u32, KQ>,
  qOk: array<bool, KQ>,
) -> KeyTiles {
  var t: KeyTiles;
  for (var d = 0u; d < p.dh / VW; d++) {
    var kd: array<Vec, KR>;
    var vd: array<Vec, KR>;
    var qd: array<Vec, KQ>;
    var gd: array<Vec, KQ>;
    for (var j = 0u; j < KR; j++) {
      if (kOk[j]) {
        kd[j] = k[kAt[j] + d];
        vd[j] = v[kAt[j] + d];
      }
    }
    for (var i = 0u; i < KQ; i++) {
      if (qOk[i]) {
        qd[i] = q[qAt[i] + d];
        gd[i] = dout[qAt[i] + d];
      }
    }
    for (var j = 0u; j < KR; j++) {
      for (var i = 0u; i < KQ; i++) {
        t.s[j][i] += vdot(kd[j], qd[i]);
        t.dp[j][i] += vdot(vd[j], gd[i]);
      }
    }
  }
  return t;
}

@compute @workgroup_size(WG)
fn dkv_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = block_of(gid, nwg, KR, false, p.kvHeads);
  if (!blk.valid) { return; }
  let keys = key_rows(blk);
  if (!keys.any) { return; }
  let kAt = keys.at;
  let allowed = keys.allowed;
  // The query heads that read this key-value head, one after another, so that their sums reach
  // dk and dv in a fixed order.
  let group = p.heads / p.kvHeads;
  for (var h = blk.h * group; h < (blk.h + 1u) * group; h++) {
    // Queries before the first key of the block see none of its keys.
    for (var r0 = blk.row0; r0 < blk.len; r0 += KQ) {
      var qAt: array<u32, KQ>;
      var qOk: array<bool, KQ>;
      var rowLse: array<f32, KQ>;
      var rowDelta: array<f32, KQ>;
      for (var i = 0u; i < KQ; i++) {
        qAt[i] = q_offset(blk, h, r0 + i);
        qOk[i] = r0 + i < blk.len;
        let st = stats[stat_index(blk, h, r0 + i)];
        rowLse[i] = st.x;
        rowDelta[i] = st.y;
      }
      var t = key_tiles(kAt, allowed, qAt, qOk);
      let bits = keep_bits_by_query(blk, h, r0, KQ, blk.row0, KR);
      // t.s becomes P and t.dp becomes scale · dS.
      for (var j = 0u; j < KR; j++) {
        for (var i = 0u; i < KQ; i++) {
          let live = allowed[j] && qOk[i] && blk.row0 + j <= r0 + i;
          let prob = select(0.0, exp(t.s[j][i] * p.scale - rowLse[i]), live);
          var factor = 1.0;
          if (HAS_DROPOUT) { factor = drop_factor(bits, i, j); }
          t.s[j][i] = prob * factor;
          t.dp[j][i] = prob * (factor * t.dp[j][i] - rowDelta[i]) * p.scale;
        }
      }
      // dk and dv are zero on entry: the first tile of the first head need not read them back.
      let first = h == blk.h * group && r0 == blk.row0;
      let part = blk.row0 / KR * p.partStride;
      for (var d = 0u; d < p.dh / VW; d++) {
        if (DQ_PARTS) {
          var kd: array<Vec, KR>;
          for (var j = 0u; j < KR; j++) {
            if (allowed[j]) { kd[j] = k[kAt[j] + d]; }
          }
          for (var i = 0u; i < KQ; i++) {
            if (qOk[i]) {
              var acc = Vec(0.0);
              for (var j = 0u; j < KR; j++) { acc = fma(Vec(t.dp[j][i]), kd[j], acc); }
              dq_parts[part + qAt[i] + d] = acc;
            }
          }
        }
        var qd: array<Vec, KQ>;
        var gd: array<Vec, KQ>;
        for (var i = 0u; i < KQ; i++) {
          if (qOk[i]) {
            qd[i] = q[qAt[i] + d];
            gd[i] = dout[qAt[i] + d];
          }
        }
        for (var j = 0u; j < KR; j++) {
          if (allowed[j]) {
            var accK = Vec(0.0);
            var accV = Vec(0.0);
            if (!first) {
              accK = dk[kAt[j] + d];
              accV = dv[kAt[j] + d];
            }
            for (var i = 0u; i < KQ; i++) {
              accK = fma(Vec(t.dp[j][i]), qd[i], accK);
              accV = fma(Vec(t.s[j][i]), gd[i], accV);
            }
            dk[kAt[j] + d] = accK;
            dv[kAt[j] + d] = accV;
          }
        }
      }
    }
  }
}
