// h [N, d] for cce_table_grad.wgsl when d is a multiple of 4: one vec4 load per column group
// (llvmpipe loads storage lane by lane, so a vec4 costs about what one float does).
@group(0) @binding(2) var<storage, read> h: array<vec4f>;

// Columns 4q .. 4q + 3 of row n of h.
fn h_quad(n: u32, q: u32) -> vec4f {
  return h[n * p.quads + q];
}
