// Negatives for sampled softmax, drawn inside the kernels that score them: every id is a pure
// function of (seed, position, slot), so neither a loss's forward nor its backward ever stores an
// N×K id tensor. src/loss/negatives.ts mirrors negative_id bit for bit. Needs random.wgsl
// prepended; declares binding 1, the popularity alias table, for every shader that includes it.

const NEGATIVE_STREAM: u32 = 0x4E454731u;
const NEGATIVES_SHARED: u32 = 1u;
const NEGATIVES_POPULARITY: u32 = 2u;

// kind: 0 uniform, 1 shared, 2 popularity (src/loss/negatives.ts's NEGATIVE_KIND_CODES).
struct NegativeSpec { kind: u32, k: u32, items: u32, seed: u32 }

// Column c of a Walker alias table over items 0..items-1: (bits of the f32 keep-probability,
// alias), one 8-byte load per draw. Uniform and shared specs bind any buffer here; they never
// read it.
@group(0) @binding(1) var<storage, read> negative_alias: array<vec2u>;

// The item id (1..items) in `slot` of `position`; shared specs ignore the position.
fn negative_id(spec: NegativeSpec, position: u32, slot: u32) -> u32 {
  let index = select(position * spec.k + slot, slot, spec.kind == NEGATIVES_SHARED);
  if (spec.kind != NEGATIVES_POPULARITY) {
    return u32(rand_int(spec.seed, NEGATIVE_STREAM, index, 1, i32(spec.items) + 1));
  }
  let bits = rand_bits(spec.seed, NEGATIVE_STREAM, index);
  // The high word of bits.x · items picks the column with bias at most items / 2^32.
  let column = rand_mulhi(bits.x, spec.items);
  let u = f32(bits.y >> 8u) * 5.9604644775390625e-8;
  let cell = negative_alias[column];
  return select(cell.y, column, u < bitcast<f32>(cell.x)) + 1u;
}
