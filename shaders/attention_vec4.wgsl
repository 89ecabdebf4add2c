// Element type of the attention kernels when the head dimension is a multiple of 4: llvmpipe
// fetches a vec4 in one lane-by-lane pass instead of four, which makes the kernels ~1.5× faster.
alias Vec = vec4f;
const VW: u32 = 4u;

fn vdot(a: vec4f, b: vec4f) -> f32 {
  return dot(a, b);
}
