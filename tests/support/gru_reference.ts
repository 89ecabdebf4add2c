/** The GRU recurrence in float64 (PyTorch's gate order), the reference of the fused kernels. */

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * hs [B, T, H] from gx [B, T, 3H] (input projection without its bias), w_hh [3H, H], b_ih and
 * b_hh [3H], h₀ = 0; past a sequence's length the state is carried unchanged.
 */
export function gruReference(
  gx: Float64Array,
  wHH: Float64Array,
  bIH: Float64Array,
  bHH: Float64Array,
  lengths: Int32Array,
  steps: number,
  hidden: number,
): Float64Array {
  const batch = lengths.length;
  const H = hidden;
  const hs = new Float64Array(batch * steps * H);
  for (let b = 0; b < batch; b++) {
    let h = new Float64Array(H);
    for (let t = 0; t < steps; t++) {
      const row = b * steps + t;
      if (t < lengths[b]) {
        const next = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const gate = (g: number) => {
            let s = bHH[g * H + j];
            for (let k = 0; k < H; k++) s += wHH[(g * H + j) * H + k] * h[k];
            return s;
          };
          const input = (g: number) => gx[row * 3 * H + g * H + j] + bIH[g * H + j];
          const r = sigmoid(input(0) + gate(0));
          const z = sigmoid(input(1) + gate(1));
          const n = Math.tanh(input(2) + r * gate(2));
          next[j] = (1 - z) * n + z * h[j];
        }
        h = next;
      }
      hs.set(h, row * H);
    }
  }
  return hs;
}

/** A packed gx [Σ lengths, 3H] (live steps, sequence after sequence) as padded [B, T, 3H]. */
export function unpackRows(
  packed: Float64Array,
  lengths: Int32Array,
  steps: number,
  width: number,
): Float64Array {
  const out = new Float64Array(lengths.length * steps * width);
  let at = 0;
  lengths.forEach((l, b) => {
    out.set(packed.subarray(at * width, (at + l) * width), b * steps * width);
    at += l;
  });
  return out;
}
