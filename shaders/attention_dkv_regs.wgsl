// The dk/dv kernel of attention_backward.wgsl (dkv_rows; see there) for a head dimension fixed
// when the shader is built: attention.ts prepends `const DV: u32` = dh / VW. The block's k and v
// rows and its dk and dv sums live in private arrays of constant size, which NIR keeps in
// registers, and so do the q and dO rows of the current RQ queries: a step loads only q and dO
// (and writes its dq part), where attention_dkv.wgsl reloads k and v and reads and writes dk and
// dv back per step (llvmpipe gathers every load and store lane by lane).
// k is held scaled by scale · log2(e), so that a score is already the exponent of exp2; the
// constant factors of dk and of the dq parts are applied when they are written.
// Queries per step: at head dim 16, 4 ran ~1.1× faster than 16 (fewer spills of the unrolled
// tile) and compiles in well under half the time; 2 measured no better.
const RQ: u32 = 4u;

@compute @workgroup_size(WG)
fn dkv_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = block_of(gid, nwg, KR, false, p.kvHeads);
  if (!blk.valid) { return; }
  let keys = key_rows(blk);
  if (!keys.any) { return; }
  let kAt = keys.at;
  let allowed = keys.allowed;
  let kScale = p.scale * LOG2E;
  var kr: array<array<Vec, DV>, KR>;
  var vr: array<array<Vec, DV>, KR>;
  for (var j = 0u; j < KR; j++) {
    if (allowed[j]) {
      for (var d = 0u; d < DV; d++) {
        kr[j][d] = k[kAt[j] + d] * kScale;
        vr[j][d] = v[kAt[j] + d];
      }
    }
  }
  // Σ_i dS_ij q_i / scale and Σ_i P_ij M_ij dO_i.
  var dkAcc: array<array<Vec, DV>, KR>;
  var dvAcc: array<array<Vec, DV>, KR>;
  let part = blk.row0 / KR * p.partStride;
  // The query heads that read this key-value head, one after another, so that their sums reach
  // dk and dv in a fixed order.
  let group = p.heads / p.kvHeads;
  for (var h = blk.h * group; h < (blk.h + 1u) * group; h++) {
    // Queries before the first key of the block see none of its keys.
    for (var r0 = blk.row0; r0 < blk.len; r0 += RQ) {
      var qAt: array<u32, RQ>;
      var qOk: array<bool, RQ>;
      var rowLse: array<f32, RQ>;
      var rowDelta: array<f32, RQ>;
      var qd: array<array<Vec, DV>, RQ>;
      var gd: array<array<Vec, DV>, RQ>;
      for (var i = 0u; i < RQ; i++) {
        qAt[i] = q_offset(blk, h, r0 + i);
        qOk[i] = r0 + i < blk.len;
        let st = stats[stat_index(blk, h, r0 + i)];
        rowLse[i] = st.x * LOG2E;
        rowDelta[i] = st.y;
        if (qOk[i]) {
          for (var d = 0u; d < DV; d++) {
            qd[i][d] = q[qAt[i] + d];
            gd[i][d] = dout[qAt[i] + d];
          }
        }
      }
      let bits = keep_bits_by_query(blk, h, r0, RQ, blk.row0, KR);
      // P_ij M_ij and dS_ij of the tile.
      var pm: array<array<f32, RQ>, KR>;
      var ds: array<array<f32, RQ>, KR>;
      for (var j = 0u; j < KR; j++) {
        for (var i = 0u; i < RQ; i++) {
          var s = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < DV; d++) {
            s += vdot(kr[j][d], qd[i][d]);
            dp += vdot(vr[j][d], gd[i][d]);
          }
          let live = allowed[j] && qOk[i] && blk.row0 + j <= r0 + i;
          let prob = select(0.0, exp2(s - rowLse[i]), live);
          var factor = 1.0;
          if (HAS_DROPOUT) { factor = drop_factor(bits, i, j); }
          pm[j][i] = prob * factor;
          ds[j][i] = prob * (factor * dp - rowDelta[i]);
        }
      }
      if (DQ_PARTS) {
        // scale Σ_j dS_ij k_j = ln(2) Σ_j dS_ij kr_j.
        for (var i = 0u; i < RQ; i++) {
          if (qOk[i]) {
            for (var d = 0u; d < DV; d++) {
              var acc = Vec(0.0);
              for (var j = 0u; j < KR; j++) { acc = fma(Vec(ds[j][i]), kr[j][d], acc); }
              dq_parts[part + qAt[i] + d] = acc * LN2;
            }
          }
        }
      }
      for (var j = 0u; j < KR; j++) {
        for (var d = 0u; d < DV; d++) {
          for (var i = 0u; i < RQ; i++) {
            dkAcc[j][d] = fma(Vec(ds[j][i]), qd[i][d], dkAcc[j][d]);
            dvAcc[j][d] = fma(Vec(pm[j][i]), gd[i][d], dvAcc[j][d]);
          }
        }
      }
    }
  }
  // dk and dv are zero on entry; masked keys keep them so.
  for (var j = 0u; j < KR; j++) {
    if (allowed[j]) {
      for (var d = 0u; d < DV; d++) {
        dk[kAt[j] + d] = dkAcc[j][d] * p.scale;
        dv[kAt[j] + d] = dvAcc[j][d];
      }
    }
  }
}
