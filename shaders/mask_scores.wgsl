// Excludes items from full-catalogue ranking: column 0 (the padding item) and each row's CSR list
// of items (the user's history) become -Infinity. One workgroup per row of the bound window and
// block of p.span of its items (z; a software adapter's loop budget bounds a block).
// Scores are bound as raw bits: the kernel writes the -Infinity pattern without any float
// arithmetic (a WGSL const-expression may not evaluate to an infinity).
struct Params { rows: u32, cols: u32, row0: u32, span: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> scores: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<i32>;
@group(0) @binding(3) var<storage, read> items: array<i32>;

const WG: u32 = 64u;
const NEG_INF: u32 = 0xff800000u;

@compute @workgroup_size(WG)
fn mask(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  if (lid == 0u && wid.z == 0u) { scores[base] = NEG_INF; }
  // Offsets are global (rows of the whole tensor); the host checked that items lie in [0, cols).
  // A repeated item is written twice with the same value, which is harmless.
  let row = p.row0 + r;
  let first = u32(offsets[row]);
  let last = u32(offsets[row + 1u]);
  let begin = min(first + wid.z * p.span, last);
  let end = min(begin + p.span, last);
  for (var i = begin + lid; i < end; i += WG) {
    scores[base + u32(items[i])] = NEG_INF;
  }
}
