// Element type of the attention kernels for any head dimension: one float per load.
alias Vec = f32;
const VW: u32 = 1u;

fn vdot(a: f32, b: f32) -> f32 {
  return a * b;
}
