/** Seeded host-side initialisation of parameters (deterministic across runs and machines). */
export function uniformInit(n: number, bound: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * random() - 1) * bound;
  return out;
}

/** Normal(0, std²) by Box–Muller. */
export function normalInit(n: number, std: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random()));
    const theta = 2 * Math.PI * random();
    out[i] = r * Math.cos(theta) * std;
    if (i + 1 < n) out[i + 1] = r * Math.sin(theta) * std;
  }
  return out;
}
