// adam.wgsl's `dense` update for up to 3 small parameters in one dispatch (a model's norms and
// small weights: one dispatch each cost more than their updates). Workgroup layer z updates
// parameter z, whose n[z] elements are bound at slot z; slots past the ones given are bound to
// slot 0's buffers and never touched. The arithmetic is adam.wgsl's, so the step is the same, bit
// for bit.
struct Params {
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,
  stepSize: f32,
  invSqrtBc2: f32,
  maxNorm: f32,
  n: array<vec4u, 1>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> norm: array<f32>;
@group(0) @binding(2) var<storage, read_write> param0: array<f32>;
@group(0) @binding(3) var<storage, read> grad0: array<f32>;
@group(0) @binding(4) var<storage, read_write> m0: array<f32>;
@group(0) @binding(5) var<storage, read_write> v0: array<f32>;
@group(0) @binding(6) var<storage, read_write> param1: array<f32>;
@group(0) @binding(7) var<storage, read> grad1: array<f32>;
@group(0) @binding(8) var<storage, read_write> m1: array<f32>;
@group(0) @binding(9) var<storage, read_write> v1: array<f32>;
@group(0) @binding(10) var<storage, read_write> param2: array<f32>;
@group(0) @binding(11) var<storage, read> grad2: array<f32>;
@group(0) @binding(12) var<storage, read_write> m2: array<f32>;
@group(0) @binding(13) var<storage, read_write> v2: array<f32>;

override DECOUPLED: u32 = 0u;

struct State {
  w: f32,
  g: f32,
  m: f32,
  v: f32,
}

fn load(slot: u32, i: u32) -> State {
  switch slot {
    case 0u: { return State(param0[i], grad0[i], m0[i], v0[i]); }
    case 1u: { return State(param1[i], grad1[i], m1[i], v1[i]); }
    default: { return State(param2[i], grad2[i], m2[i], v2[i]); }
  }
}

fn store(slot: u32, i: u32, s: State) {
  switch slot {
    case 0u: {
      param0[i] = s.w;
      m0[i] = s.m;
      v0[i] = s.v;
    }
    case 1u: {
      param1[i] = s.w;
      m1[i] = s.m;
      v1[i] = s.v;
    }
    default: {
      param2[i] = s.w;
      m2[i] = s.m;
      v2[i] = s.v;
    }
  }
}

@compute @workgroup_size(256)
fn main(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(workgroup_id) wid: vec3u,
) {
  let slot = wid.z;
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n[0][slot]) { return; }
  var s = load(slot, i);
  var w = s.w;
  var g = s.g;
  if (p.maxNorm > 0.0) { g = g * min(1.0, p.maxNorm / (norm[0] + 1e-6)); }
  if (DECOUPLED != 0u) {
    w = w * (1.0 - p.lr * p.weightDecay);
  } else {
    g = g + p.weightDecay * w;
  }
  let m1 = p.beta1 * s.m + (1.0 - p.beta1) * g;
  let v1 = p.beta2 * s.v + (1.0 - p.beta2) * g * g;
  s.m = m1;
  s.v = v1;
  s.w = w - p.stepSize * m1 / (sqrt(v1) * p.invSqrtBc2 + p.eps);
  store(slot, i, s);
}
