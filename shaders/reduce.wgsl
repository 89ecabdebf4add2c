// Sums along the last axis of a row-major [rows, cols] block, in a fixed order (deterministic).
// A segment of SEG threads (a power of two) reduces one block of up to SEG·ITEMS elements of one
// row: each thread adds its strided elements in order, then a tree in workgroup memory adds the
// threads. Rows longer than one block write one partial per block, [rows, blocks], which the next
// pass reduces the same way. Several short rows share a workgroup, one segment each.
struct Params { rows: u32, cols: u32, blocks: u32, out0: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override SEG: u32;
override ITEMS: u32;
const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let seg = (wid.x + wid.y * nwg.x) * (WG / SEG) + lid / SEG;
  let t = lid % SEG;
  let live = seg < p.rows * p.blocks;
  var s = 0.0;
  if (live) {
    let row = seg / p.blocks;
    let start = (seg % p.blocks) * SEG * ITEMS;
    let end = min(start + SEG * ITEMS, p.cols);
    let base = row * p.cols;
    for (var c = start + t; c < end; c += SEG) { s += x[base + c]; }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var k = SEG / 2u; k > 0u; k = k / 2u) {
    if (t < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  if (live && t == 0u) { out[p.out0 + seg] = red[lid] * p.scale; }
}
