// Writes the negatives a fused loss would draw, so tests can compare them with the host's draws.
// Needs random.wgsl and negatives.wgsl prepended. Element i of the whole [positions·k] (or [k],
// shared) id tensor is slot i % k of position i / k; `first` is the window's first element.
struct Params { n: u32, first: u32, kind: u32, k: u32, items: u32, seed: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let at = p.first + i;
  ids[i] = negative_id(NegativeSpec(p.kind, p.k, p.items, p.seed), at / p.k, at % p.k);
}
