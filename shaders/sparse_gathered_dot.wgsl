// The gathered dot, one source shared by CCE- and the sparse matmuls (src/sparse/gathered_dot.ts
// composes it into their shaders): Σ_j a_j · b_j over j < len, where gather_a reads element j of
// a compact row and gather_next yields the elements of the other row one after another, picked
// by an index list (a table row picked by a negative's id; a dense row at the kept positions of a
// compressed row). The composing shader defines `struct Gather`, the state of one dot, and both
// accessors.
//
// Products accumulate in one fixed order whatever the caller: four lanes of a vec4 over steps of
// four, a scalar tail, then (x + y) + (z + w) + tail.
fn gathered_dot(g: ptr<function, Gather>, len: u32) -> f32 {
  var s = vec4f(0.0);
  var j = 0u;
  for (; j + 4u <= len; j += 4u) {
    let b0 = gather_next(g);
    let b1 = gather_next(g);
    let b2 = gather_next(g);
    let b3 = gather_next(g);
    let a = vec4f(gather_a(g, j), gather_a(g, j + 1u), gather_a(g, j + 2u), gather_a(g, j + 3u));
    s = fma(a, vec4f(b0, b1, b2, b3), s);
  }
  var tail = 0.0;
  for (; j < len; j++) { tail = fma(gather_a(g, j), gather_next(g), tail); }
  return (s.x + s.y) + (s.z + s.w) + tail;
}
