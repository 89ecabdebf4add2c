/** Picking the next token from logits on the host: greedy, or softmax with temperature and top-k. */

export interface SamplingOptions {
  /** 0: greedy (argmax). Otherwise logits are divided by it before the softmax. */
  temperature: number;
  /** Only the k most likely tokens may be drawn (0: all). */
  topK: number;
}

/** The next token of `logits` [vocab]; `random` gives uniforms in [0, 1). */
export function sampleToken(
  logits: ArrayLike<number>,
  { temperature, topK }: SamplingOptions,
  random: () => number,
): number {
  if (!(temperature >= 0)) throw new RangeError(`temperature must be ≥ 0, got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) {
    throw new RangeError(`top-k must be a whole number ≥ 0, got ${topK}`);
  }
  const n = logits.length;
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0 || topK === 1) return best;
  // Candidates in descending order of logit, ties by id, so a draw depends on nothing else.
  let order = Array.from({ length: n }, (_, i) => i);
  if (topK > 0 && topK < n) {
    order.sort((a, b) => logits[b] - logits[a] || a - b);
    order = order.slice(0, topK);
  }
  const weights = order.map((i) => Math.exp((logits[i] - logits[best]) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let u = random() * total;
  for (let k = 0; k < order.length; k++) {
    u -= weights[k];
    if (u < 0) return order[k];
  }
  return order[order.length - 1];
}
