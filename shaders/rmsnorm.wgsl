// RMS normalisation over the last axis of x [rows, cols] (Llama's RMSNorm):
// y = x · rstd · gamma, rstd = 1 / sqrt(mean(x²) + eps); no mean is subtracted and there is no
// shift. A segment of TPR threads (a power of two) handles one row and WG / TPR rows share a
// workgroup; row sums are trees in workgroup memory, so the order is fixed. x, y, g and dx are
// bound as a window of rows starting at row p.row0; rstd and the partials are bound whole.
struct Params { rows: u32, cols: u32, eps: f32, row0: u32, chunk_rows: u32, chunk0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial_sums: array<f32>;

override TPR: u32;
// backward_x adds dx to what dx holds (the gradient its input gathered from other uses).
override ACCUMULATE: bool = false;
const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

// The sum of v over the calling thread's segment (t is its index in the segment), for every
// thread of it. Must be reached by the whole workgroup.
fn segment_sum(lid: u32, t: u32, v: f32) -> f32 {
  // A row to itself needs no tree, and llvmpipe pays for every barrier.
  if (TPR == 1u) { return v; }
  red[lid] = v;
  workgroupBarrier();
  for (var k = TPR / 2u; k > 0u; k = k / 2u) {
    if (t < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  let total = red[lid - t];
  workgroupBarrier();
  return total;
}

fn row_of(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let t = lid % TPR;
  let live = r < p.rows;
  let base = r * p.cols;
  var q = 0.0;
  if (live) {
    for (var c = t; c < p.cols; c += TPR) {
      let v = x[base + c];
      q += v * v;
    }
  }
  let inv = 1.0 / sqrt(segment_sum(lid, t, q) / f32(p.cols) + p.eps);
  if (!live) { return; }
  for (var c = t; c < p.cols; c += TPR) { y[base + c] = x[base + c] * inv * gamma[c]; }
  if (t == 0u) { rstd[p.row0 + r] = inv; }
}

// dx = rstd · (ĝ − x̂ · mean(ĝ · x̂)) with ĝ = g · gamma and x̂ = x · rstd.
@compute @workgroup_size(WG)
fn backward_x(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let t = lid % TPR;
  let live = r < p.rows;
  let base = r * p.cols;
  var inv = 0.0;
  var acc = 0.0;
  if (live) {
    inv = rstd[p.row0 + r];
    for (var c = t; c < p.cols; c += TPR) { acc += g[base + c] * gamma[c] * x[base + c] * inv; }
  }
  let m = segment_sum(lid, t, acc) / f32(p.cols);
  if (!live) { return; }
  for (var c = t; c < p.cols; c += TPR) {
    let d = inv * (g[base + c] * gamma[c] - x[base + c] * inv * m);
    if (ACCUMULATE) {
      dx[base + c] += d;
    } else {
      dx[base + c] = d;
    }
  }
}

// First stage of dgamma = Σ_rows g · x̂: chunk k of chunk_rows rows writes row p.chunk0 + k of
// partials [chunks, cols]; column_sum.wgsl's `finish` adds the chunks. Grid: x, y over column
// blocks of WG; z over this window's chunks.
@compute @workgroup_size(WG)
fn param_partials(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) lid: u32) {
  let col = (wid.x + wid.y * nwg.x) * WG + lid;
  if (col >= p.cols) { return; }
  let r0 = wid.z * p.chunk_rows;
  let r1 = min(r0 + p.chunk_rows, p.rows);
  var dgamma = 0.0;
  for (var r = r0; r < r1; r++) {
    dgamma += g[r * p.cols + col] * x[r * p.cols + col] * rstd[p.row0 + r];
  }
  partial_sums[(p.chunk0 + wid.z) * p.cols + col] = dgamma;
}

// The same three entries over vec4s of columns (cols a multiple of 4; p.cols still counts floats):
// llvmpipe fetches storage lane by lane, and a vec4 shares one fetch's per-lane overhead among
// four floats. Segments walk vec4 columns t, t + TPR, …
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> gamma4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(5) var<storage, read> g4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dx4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> partial_sums4: array<vec4f>;

@compute @workgroup_size(WG)
fn forward4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let t = lid % TPR;
  let live = r < p.rows;
  let cols4 = p.cols / 4u;
  let base = r * cols4;
  var q = 0.0;
  if (live) {
    for (var c = t; c < cols4; c += TPR) {
      let v = x4[base + c];
      q += dot(v, v);
    }
  }
  let inv = 1.0 / sqrt(segment_sum(lid, t, q) / f32(p.cols) + p.eps);
  if (!live) { return; }
  for (var c = t; c < cols4; c += TPR) { y4[base + c] = x4[base + c] * inv * gamma4[c]; }
  if (t == 0u) { rstd[p.row0 + r] = inv; }
}

@compute @workgroup_size(WG)
fn backward_x4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let t = lid % TPR;
  let live = r < p.rows;
  let cols4 = p.cols / 4u;
  let base = r * cols4;
  var inv = 0.0;
  var acc = 0.0;
  if (live) {
    inv = rstd[p.row0 + r];
    for (var c = t; c < cols4; c += TPR) { acc += dot(g4[base + c] * gamma4[c], x4[base + c]) * inv; }
  }
  let m = segment_sum(lid, t, acc) / f32(p.cols);
  if (!live) { return; }
  for (var c = t; c < cols4; c += TPR) {
    let d = inv * (g4[base + c] * gamma4[c] - x4[base + c] * inv * m);
    if (ACCUMULATE) {
      dx4[base + c] += d;
    } else {
      dx4[base + c] = d;
    }
  }
}

// Grid: x, y over blocks of WG vec4 columns; z over this window's chunks.
@compute @workgroup_size(WG)
fn param_partials4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  let col = (wid.x + wid.y * nwg.x) * WG + lid;
  let cols4 = p.cols / 4u;
  if (col >= cols4) { return; }
  let r0 = wid.z * p.chunk_rows;
  let r1 = min(r0 + p.chunk_rows, p.rows);
  var dgamma = vec4f(0.0);
  for (var r = r0; r < r1; r++) {
    dgamma += g4[r * cols4 + col] * x4[r * cols4 + col] * rstd[p.row0 + r];
  }
  partial_sums4[(p.chunk0 + wid.z) * cols4 + col] = dgamma;
}

// The *_row(s) entries: rows of COLS4 <= ROW_VEC4S vec4s (ROW_VEC4S is prepended by rmsnorm.ts),
// each row whole in one thread (TPR = 1). COLS4 is fixed per pipeline so that NIR unrolls the
// column loops and keeps the private arrays in registers; with p.cols / 4 as the bound the
// forward ran ~1.5× slower on llvmpipe.
override COLS4: u32;

// forward4 over p.chunk_rows consecutive rows per thread: each row stays in a private array
// between the sum of squares and the scaled write, so x is read from storage once, and gamma is
// read once per thread. On llvmpipe chunks of rows ran ~13% faster than a row per thread.
@compute @workgroup_size(WG)
fn forward4_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) lid: u32) {
  let chunk = (wid.x + wid.y * nwg.x) * WG + lid;
  let r0 = chunk * p.chunk_rows;
  if (r0 >= p.rows) { return; }
  let r1 = min(r0 + p.chunk_rows, p.rows);
  var gm: array<vec4f, ROW_VEC4S>;
  for (var c = 0u; c < COLS4; c++) { gm[c] = gamma4[c]; }
  for (var r = r0; r < r1; r++) {
    let base = r * COLS4;
    var xs: array<vec4f, ROW_VEC4S>;
    var q = 0.0;
    for (var c = 0u; c < COLS4; c++) {
      xs[c] = x4[base + c];
      q += dot(xs[c], xs[c]);
    }
    let inv = 1.0 / sqrt(q / f32(p.cols) + p.eps);
    for (var c = 0u; c < COLS4; c++) { y4[base + c] = xs[c] * inv * gm[c]; }
    rstd[p.row0 + r] = inv;
  }
}

// backward_x4 whose first pass keeps the row's ĝ and x in private arrays that the second reads
// back. Every lane walks the same column c at once, so those reads are plain vector loads, where
// storage reads gather lane by lane: 4 storage reads of a column instead of 7 (g, gamma and x
// twice, dx).
@compute @workgroup_size(WG)
fn backward_x4_row(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * COLS4;
  let inv = rstd[p.row0 + r];
  var gg: array<vec4f, ROW_VEC4S>;
  var xs: array<vec4f, ROW_VEC4S>;
  var acc = 0.0;
  for (var c = 0u; c < COLS4; c++) {
    gg[c] = g4[base + c] * gamma4[c];
    xs[c] = x4[base + c];
    acc += dot(gg[c], xs[c]) * inv;
  }
  let m = acc / f32(p.cols);
  for (var c = 0u; c < COLS4; c++) {
    let d = inv * (gg[c] - xs[c] * inv * m);
    if (ACCUMULATE) {
      dx4[base + c] += d;
    } else {
      dx4[base + c] = d;
    }
  }
}

// backward_x4_row over p.chunk_rows consecutive rows per thread that also writes the first stage
// of dgamma for them (row p.chunk0 + chunk of partials, in param_partials4's layout): the products
// g · x̂ come from values already in registers, where param_partials4 reads x and g again. No
// workgroup memory and no barrier: each thread's partial is its own. gamma is read once per
// thread, not once per row (~20% of this kernel's time on llvmpipe).
@compute @workgroup_size(WG)
fn backward_x4_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) lid: u32) {
  let chunk = (wid.x + wid.y * nwg.x) * WG + lid;
  let r0 = chunk * p.chunk_rows;
  if (r0 >= p.rows) { return; }
  let r1 = min(r0 + p.chunk_rows, p.rows);
  var dgamma: array<vec4f, ROW_VEC4S>;
  var gm: array<vec4f, ROW_VEC4S>;
  for (var c = 0u; c < COLS4; c++) { gm[c] = gamma4[c]; }
  for (var r = r0; r < r1; r++) {
    let base = r * COLS4;
    let inv = rstd[p.row0 + r];
    var gg: array<vec4f, ROW_VEC4S>;
    var xs: array<vec4f, ROW_VEC4S>;
    var acc = 0.0;
    for (var c = 0u; c < COLS4; c++) {
      let gv = g4[base + c];
      xs[c] = x4[base + c];
      dgamma[c] += gv * xs[c] * inv;
      gg[c] = gv * gm[c];
      acc += dot(gg[c], xs[c]) * inv;
    }
    let m = acc / f32(p.cols);
    for (var c = 0u; c < COLS4; c++) {
      let d = inv * (gg[c] - xs[c] * inv * m);
      if (ACCUMULATE) {
        dx4[base + c] += d;
      } else {
        dx4[base + c] = d;
      }
    }
  }
  for (var c = 0u; c < COLS4; c++) { partial_sums4[(p.chunk0 + chunk) * COLS4 + c] = dgamma[c]; }
}
