// Tensors of counter-based random numbers; needs random.wgsl prepended. Element i of the whole
// tensor draws counter (p.first + i within this window), so windows and reruns agree.
struct Params { n: u32, first: u32, seed: u32, stream: u32, lo: i32, hi: i32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

// Both words of each draw: out is [n, 2].
@compute @workgroup_size(256)
fn fill_bits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let b = rand_bits(p.seed, p.stream, p.first + i);
  out[2u * i] = b.x;
  out[2u * i + 1u] = b.y;
}

@compute @workgroup_size(256)
fn fill_uniform(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out[i] = bitcast<u32>(rand_uniform(p.seed, p.stream, p.first + i));
}

@compute @workgroup_size(256)
fn fill_int(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out[i] = bitcast<u32>(rand_int(p.seed, p.stream, p.first + i, p.lo, p.hi));
}
