import assert from "node:assert/strict";
import { sampleToken } from "../../src/models/sampling.ts";
import { seededRandom } from "../../src/tensor/random.ts";

Deno.test("temperature 0 is greedy; top-k draws only among the k most likely", () => {
  const logits = [0.1, 2, -1, 1.9, 0];
  assert.equal(sampleToken(logits, { temperature: 0, topK: 0 }, Math.random), 1);
  const random = seededRandom(1);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, { temperature: 1, topK: 2 }, random));
  assert.deepEqual([...seen].sort(), [1, 3]);
});

Deno.test("draws follow softmax(logits / T) and repeat with the seed", () => {
  const logits = [Math.log(1), Math.log(3)];
  const draw = (seed: number) => {
    const r = seededRandom(seed);
    return Array.from({ length: 4000 }, () => sampleToken(logits, { temperature: 1, topK: 0 }, r));
  };
  const share = draw(3).filter((x) => x === 1).length / 4000;
  assert.ok(Math.abs(share - 0.75) < 0.03, `share ${share}`);
  assert.deepEqual(draw(3), draw(3));
  assert.throws(() => sampleToken(logits, { temperature: -1, topK: 0 }, Math.random), /≥ 0/);
});
