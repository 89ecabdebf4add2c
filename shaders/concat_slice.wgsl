// Copies a block between two tensors viewed as [outer, axis, inner] (slice, concat and their
// backward): for each outer row o < p.rows, `run` consecutive elements move from
// src[o · src_row + src_off ...] to dst[o · dst_row + dst_off ...]. Offsets are in elements of the
// bound windows, which hold whole outer rows. A thread owns one position k of the run and walks a
// chunk of chunk_rows rows. Elements move as raw 32-bit words, so every dtype works. `main4`
// moves four words per thread, when the run, the row lengths and the offsets are multiples of 4
// (every field then counts vec4s): llvmpipe fetches storage lane by lane, and a vec4 shares one
// fetch's per-lane cost among four words.
struct Params {
  rows: u32, run: u32, chunk_rows: u32, src_row: u32, src_off: u32, dst_row: u32, dst_off: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(1) var<storage, read> src4: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> dst4: array<vec4u>;

const WG: u32 = 64u;

// Grid: x, y over blocks of WG run positions; z over row chunks.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let k = (wid.x + wid.y * nwg.x) * WG + lid;
  if (k >= p.run) { return; }
  let r1 = min((wid.z + 1u) * p.chunk_rows, p.rows);
  for (var o = wid.z * p.chunk_rows; o < r1; o++) {
    dst[o * p.dst_row + p.dst_off + k] = src[o * p.src_row + p.src_off + k];
  }
}

@compute @workgroup_size(WG)
fn main4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let k = (wid.x + wid.y * nwg.x) * WG + lid;
  if (k >= p.run) { return; }
  let r1 = min((wid.z + 1u) * p.chunk_rows, p.rows);
  for (var o = wid.z * p.chunk_rows; o < r1; o++) {
    dst4[o * p.dst_row + p.dst_off + k] = src4[o * p.src_row + p.src_off + k];
  }
}
