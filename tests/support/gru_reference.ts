/** The GRU recurrence in float64 (PyTorch's gate order), the reference of the fused kernels. */

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * hs [B, T, H] from gx [B, T, 3H] (input projection), w_hh [3H, H], b_hh [3H], h₀ = 0; past a
 * sequence's length the state is carried unchanged.
 */
export function gruReference(
  gx: Float64Array,
  wHH: Float64Array,
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
          const x = row * 3 * H;
          const r = sigmoid(gx[x + j] + gate(0));
          const z = sigmoid(gx[x + H + j] + gate(1));
          const n = Math.tanh(gx[x + 2 * H + j] + r * gate(2));
          next[j] = (1 - z) * n + z * h[j];
        }
        h = next;
      }
      hs.set(h, row * H);
    }
  }
  return hs;
}
