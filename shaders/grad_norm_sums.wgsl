// What every grad-norm kernel shares: a tree sum of one value per thread in workgroup memory,
// and the chunk a workgroup of `partial_sums` covers (WG threads × PER_THREAD elements; the host
// sizes the partials with the same chunk). The order of every sum is fixed, so the norm is
// bit-identical run to run.
const WG: u32 = 256u;
const PER_THREAD: u32 = 16u;
var<workgroup> sums: array<f32, WG>;

fn tree_sum(lid: u32, value: f32) -> f32 {
  sums[lid] = value;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      sums[lid] += sums[lid + stride];
    }
    workgroupBarrier();
  }
  return sums[0];
}
