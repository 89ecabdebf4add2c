import assert from "node:assert/strict";
import { benchLm, formatLmReport, formatLmRounds } from "../../bench/lm.ts";
import { Llama } from "../../src/models/llama.ts";
import { gpuTest } from "../support/check.ts";

gpuTest("bench:lm measures training, prefill and decoding of a tiny model", async (e) => {
  const config = {
    vocab: 13,
    dim: 8,
    hidden: 12,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    maxLen: 16,
    normEps: 1e-5,
    ropeTheta: 10000,
    tied: true,
  };
  const c = {
    label: "tiny",
    model: () => Promise.resolve(new Llama(e, config)),
    tokens: Int32Array.from({ length: 200 }, (_, i) => i % 13),
    batchSize: 2,
    seqLen: 8,
    lr: 1e-3,
    clip: 1,
    promptTokens: 5,
    decodePromptTokens: 3,
    decodeTokens: 4,
    decodeRuns: 2,
  };
  // Three timed steps in two blocks, each followed by a block of the partner's.
  const partnerBlocks: number[] = [];
  const trainer = { train: (steps: number) => Promise.resolve(void partnerBlocks.push(steps)) };
  const f = await benchLm(e, c, 3, 1, { trainer, blocks: 2 });
  assert.deepEqual(partnerBlocks, [1, 2]);
  assert.deepEqual(f.trainBlockSteps, [1, 2]);
  assert.equal(f.trainBlockSeconds.length, 2);
  assert.deepEqual([f.decodeTokens, f.decodeRuns], [4, 2]);
  assert.equal(f.parameters, 13 * 8 + 8 + 2 * 8 + 8 * 8 * 2 + 2 * 4 * 8 + 3 * 12 * 8);
  for (
    const k of [
      "trainTokensPerSecond",
      "prefillTokensPerSecond",
      "decodeTokensPerSecond",
      "layerDecodeTokensPerSecond",
    ] as const
  ) {
    assert.ok(f[k] > 0 && Number.isFinite(f[k]), k);
  }
  assert.ok(f.trainPeakBytes > 0 && f.inferencePeakBytes > 0);
  assert.match(f.decodePlan, /^(tokens|fused|split)\/(lanes|rows)$/);
  const peer = {
    label: "tiny",
    parameters: f.parameters,
    trainTokensPerSecond: f.trainTokensPerSecond / 2,
    trainBlockSeconds: f.trainBlockSeconds.map((s) => 2 * s),
    prefillTokensPerSecond: f.prefillTokensPerSecond,
    decodeTokensPerSecond: f.decodeTokensPerSecond * 2,
    decodeThreads: 1,
    trainLoss: 1,
  };
  const table = formatLmReport([f], [peer]);
  assert.match(table, /tiny/);
  assert.match(table, /peer tiny/);
  assert.match(table, /\b2(\.0+)?\b/, "the training ratio is 2");
  assert.match(table, /4×2/);
  assert.match(table, /1 thread\b/);
  assert.deepEqual(formatLmRounds([f], [peer]), [
    "tiny: training ×peer by round 2.000 2.000 (median 2.000)",
  ]);
  // --decode-only: no steps, no training figures, decoding as before.
  const d = await benchLm(e, { ...c, decodeRuns: 1 }, 0, 0);
  assert.ok(Number.isNaN(d.trainTokensPerSecond) && d.decodeTokensPerSecond > 0);
  assert.deepEqual(d.trainBlockSeconds, []);
  assert.match(formatLmReport([d], []), /tiny\s+\S+\s+\S+\s+-\s+-/);
});
