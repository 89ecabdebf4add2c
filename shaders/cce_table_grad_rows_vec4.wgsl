// h [N, d] and the table gradient's window for cce_table_grad.wgsl when d is a multiple of 4: one
// vec4 load or store per column group (llvmpipe moves storage lane by lane, so a vec4 costs
// about what one float does).
@group(0) @binding(2) var<storage, read> h: array<vec4f>;
@group(0) @binding(15) var<storage, read_write> dtable: array<vec4f>;

// Columns 4q .. 4q + 3 of row n of h.
fn h_quad(n: u32, q: u32) -> vec4f {
  return h[n * p.quads + q];
}

// Row `id`'s columns 4q .. 4q + 3 = v (each is written once, into zeros).
fn store_quad(id: u32, q: u32, v: vec4f) {
  dtable[(id - p.row0) * p.quads + q] = v;
}
