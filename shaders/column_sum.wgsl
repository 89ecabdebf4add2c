// Column sums of a row-major [rows, cols] block without atomics, in two deterministic stages:
// `partials` gives each chunk of chunk_rows rows one row of partial sums (a thread per column adds
// its rows in order), and `finish` adds a column's partials in chunk order. Layer norm writes its
// own partials and reuses `finish`.
struct Params { rows: u32, cols: u32, chunk_rows: u32, chunk0: u32, stride: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial_sums: array<f32>;

const WG: u32 = 64u;

// Grid: x and y over column blocks of WG, z over the chunks of this window (written from
// p.chunk0 on).
@compute @workgroup_size(WG)
fn partials(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let col = (wid.x + wid.y * nwg.x) * WG + lid;
  if (col >= p.cols) { return; }
  let r0 = wid.z * p.chunk_rows;
  let r1 = min(r0 + p.chunk_rows, p.rows);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += a[r * p.cols + col]; }
  partial_sums[(p.chunk0 + wid.z) * p.cols + col] = s;
}

// Reads partials [p.rows chunks] with row stride p.stride from column p.offset and adds them in
// groups of p.chunk_rows chunks, in chunk order: group wid.z writes row wid.z of out [groups,
// p.cols]. One group (p.chunk_rows ≥ p.rows) gives the column sums; on a software adapter,
// reduceColumnPartials makes passes of groups of at most LOOP_BUDGET chunks each. Grid: x and y
// over column blocks of WG, z over the groups.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn finish(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let col = (wid.x + wid.y * nwg.x) * WG + lid;
  if (col >= p.cols) { return; }
  let c0 = wid.z * p.chunk_rows;
  let c1 = min(c0 + p.chunk_rows, p.rows);
  var s = 0.0;
  for (var c = c0; c < c1; c++) { s += partial_sums[c * p.stride + p.offset + col]; }
  out[wid.z * p.cols + col] = s;
}
