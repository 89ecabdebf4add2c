// Causal attention forward for a head dimension fixed when the shader is built: attention.ts
// prepends `const DV: u32` = dh / VW. The same streaming softmax as attention_forward.wgsl, but
// the block's q rows and its output accumulator live in private arrays of constant size, which
// NIR keeps in registers: each key tile loads only its k and v, and out is written once at the
// end instead of read and written back per tile (llvmpipe gathers every load lane by lane).
// The scores are kept in base 2 (q is scaled by scale · log2(e) on loading) so that the softmax
// needs exp2 and no multiply per score; lse is converted back to base e.
@group(0) @binding(6) var<storage, read_write> out: array<Vec>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;

// Keys per tile: at head dim 16, 4 ran ~1.15× faster than 16 (fewer spills of the unrolled
// tile) and compiles in a third of the time; 2 measured no better.
const RC: u32 = 4u;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = block_of(gid, nwg, QR, true, p.heads);
  let g = kv_head(blk.h);
  if (!blk.valid) { return; }
  var qAt: array<u32, QR>;
  var qOk: array<bool, QR>;
  // Running max and sum of 2^score per row, and the unnormalised output Σ 2^(s − m) v.
  var m: array<f32, QR>;
  var l: array<f32, QR>;
  var qr: array<array<Vec, DV>, QR>;
  var acc: array<array<Vec, DV>, QR>;
  let qScale = p.scale * LOG2E;
  for (var i = 0u; i < QR; i++) {
    qAt[i] = q_offset(blk, blk.h, blk.row0 + i);
    qOk[i] = blk.row0 + i < blk.len;
    m[i] = -BIG;
    if (qOk[i]) {
      for (var d = 0u; d < DV; d++) { qr[i][d] = q[qAt[i] + d] * qScale; }
    }
  }
  let keyEnd = min(blk.len, blk.row0 + QR);
  for (var c0 = 0u; c0 < keyEnd; c0 += RC) {
    var kAt: array<u32, RC>;
    var allowed: array<bool, RC>;
    var any = false;
    for (var j = 0u; j < RC; j++) {
      kAt[j] = kv_offset(blk, g, c0 + j);
      allowed[j] = c0 + j < keyEnd && key_allowed(blk, c0 + j);
      any = any || allowed[j];
    }
    // Left padding: whole tiles of masked keys cost one mask read.
    if (!any) { continue; }
    var kd: array<array<Vec, DV>, RC>;
    var vd: array<array<Vec, DV>, RC>;
    for (var j = 0u; j < RC; j++) {
      if (allowed[j]) {
        for (var d = 0u; d < DV; d++) {
          kd[j][d] = k[kAt[j] + d];
          vd[j][d] = v[kAt[j] + d];
        }
      }
    }
    let bits = keep_bits_by_key(blk, blk.h, blk.row0, QR, c0, RC);
    // One row at a time, so that only one row of scores is live.
    for (var i = 0u; i < QR; i++) {
      let row = blk.row0 + i;
      var s: array<f32, RC>;
      var tileMax = -BIG;
      for (var j = 0u; j < RC; j++) {
        var dot = 0.0;
        for (var d = 0u; d < DV; d++) { dot += vdot(qr[i][d], kd[j][d]); }
        s[j] = dot;
        if (allowed[j] && c0 + j <= row) { tileMax = max(tileMax, dot); }
      }
      let mNew = max(m[i], tileMax);
      let alpha = exp2(m[i] - mNew);
      var sum = 0.0;
      for (var d = 0u; d < DV; d++) { acc[i][d] *= alpha; }
      for (var j = 0u; j < RC; j++) {
        var e = select(0.0, exp2(s[j] - mNew), allowed[j] && c0 + j <= row);
        sum += e;
        // The running max and sum are those of the undropped softmax; only the output sees
        // the dropped probabilities, as out is linear in them.
        if (HAS_DROPOUT) { e *= drop_factor(bits, i, j); }
        for (var d = 0u; d < DV; d++) { acc[i][d] = fma(Vec(e), vd[j][d], acc[i][d]); }
      }
      l[i] = l[i] * alpha + sum;
      m[i] = mNew;
    }
  }
  // Rows without an allowed key write zeros, so out need not be cleared.
  for (var i = 0u; i < QR; i++) {
    if (qOk[i]) {
      let inv = select(0.0, 1.0 / l[i], l[i] > 0.0);
      for (var d = 0u; d < DV; d++) { out[qAt[i] + d] = acc[i][d] * inv; }
      lse[stat_index(blk, blk.h, blk.row0 + i)] = select(BIG, (m[i] + log2(l[i])) * LN2, l[i] > 0.0);
    }
  }
}
