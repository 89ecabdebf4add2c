// h [N, d] and the table gradient's window for cce_table_grad.wgsl when d is not a multiple of
// 4: column groups read and written as scalars.
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(15) var<storage, read_write> dtable: array<f32>;

// Columns 4q .. 4q + 3 of row n of h (0 past d).
fn h_quad(n: u32, q: u32) -> vec4f {
  let c = 4u * q;
  let base = n * p.d + c;
  var v = vec4f(h[base], 0.0, 0.0, 0.0);
  if (c + 1u < p.d) { v.y = h[base + 1u]; }
  if (c + 2u < p.d) { v.z = h[base + 2u]; }
  if (c + 3u < p.d) { v.w = h[base + 3u]; }
  return v;
}

// Row `id`'s columns 4q .. 4q + 3 that exist = v (each is written once, into zeros).
fn store_quad(id: u32, q: u32, v: vec4f) {
  let c = 4u * q;
  let base = (id - p.row0) * p.d + c;
  dtable[base] = v.x;
  if (c + 1u < p.d) { dtable[base + 1u] = v.y; }
  if (c + 2u < p.d) { dtable[base + 2u] = v.z; }
  if (c + 3u < p.d) { dtable[base + 3u] = v.w; }
}
