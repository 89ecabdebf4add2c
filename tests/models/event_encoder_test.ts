import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { syntheticEvents } from "../../src/data/event_synthetic.ts";
import {
  numericStats,
  packedEvents,
  randomSlices,
  wholeSequences,
} from "../../src/data/event_batches.ts";
import { Gru } from "../../src/nn/gru.ts";
import {
  EventDecoder,
  EventEncoder,
  type EventEncoderConfig,
} from "../../src/models/event_encoder.ts";
import { seededRandom } from "../../src/tensor/random.ts";
import { assertClose, gpuTest } from "../support/check.ts";

const { sequences } = syntheticEvents({ clients: 6, seed: 2, minEvents: 3, maxEvents: 9 });
const all = Int32Array.from({ length: 6 }, (_, i) => i);
const stats = numericStats(sequences, all);

const config = (encoder: "gru" | "transformer"): EventEncoderConfig => ({
  vocabs: [24],
  numericInputs: 2,
  categoryDim: 4,
  numericDim: 3,
  encoder,
  hidden: 8,
  layers: 1,
  heads: 2,
  maxLen: 16,
});

for (const kind of ["gru", "transformer"] as const) {
  gpuTest(
    `${kind} encoder: one embedding per row, independent of the other rows' padding`,
    async (e) => {
      const enc = new EventEncoder(e, config(kind), 3);
      try {
        const batch = wholeSequences(sequences, all, 16, stats);
        const z = await e.tidy(() => enc.forward(batch)).readF32();
        assert.equal(z.length, 6 * 8);
        for (const c of [0, 4]) {
          const alone = await e.tidy(() => enc.forward(wholeSequences(sequences, [c], 16, stats)))
            .readF32();
          assertClose(alone, z.subarray(c * 8, (c + 1) * 8), `${kind} client ${c}`, 1e-4, 1e-5);
        }
      } finally {
        enc.dispose();
      }
    },
  );
}

Deno.test("packed events: each row's valid events, row after row, without the padding", () => {
  const b = randomSlices(
    sequences,
    all,
    { slices: 2, minLen: 2, maxLen: 7 },
    seededRandom(4),
    stats,
  );
  const p = packedEvents(b);
  const width = b.numeric.length / (b.rows * b.steps);
  assert.equal(p.events, b.lengths.reduce((a, l) => a + l, 0));
  let at = 0;
  b.lengths.forEach((len, r) => {
    for (let t = 0; t < len; t++, at++) {
      const from = r * b.steps + t;
      assert.equal(p.categorical[0][at], b.categorical[0][from]);
      assert.deepEqual(
        p.numeric.subarray(at * width, (at + 1) * width),
        b.numeric.subarray(from * width, (from + 1) * width),
      );
    }
  });
});

gpuTest("gru encoder: packed events give the padded events' states", async (e) => {
  const enc = new EventEncoder(e, config("gru"), 3);
  const gru = new Gru(e, enc.features.width, 8, seededRandom(5));
  try {
    const b = randomSlices(
      sequences,
      all,
      { slices: 2, minLen: 1, maxLen: 8 },
      seededRandom(6),
      stats,
    );
    const states = (layout: "padded" | "packed") =>
      e.tidy(() => gru.states(enc.features.forward(b, layout), b.rows, b.steps, b.lengths))
        .readF32();
    assertClose(await states("packed"), await states("padded"), "packed vs padded", 1e-5, 1e-6);
  } finally {
    enc.dispose();
    gru.dispose();
  }
});

gpuTest("slices: lengths in [min, max] clamped to the client, inside the client's events", () => {
  const b = randomSlices(
    sequences,
    all,
    { slices: 3, minLen: 2, maxLen: 5 },
    seededRandom(1),
    stats,
  );
  assert.equal(b.rows, 18);
  b.lengths.forEach((len, r) => {
    const c = b.clients[r];
    const n = sequences.offsets[c + 1] - sequences.offsets[c];
    assert.ok(len >= Math.min(2, n) && len <= Math.min(5, n));
  });
});

gpuTest("decoder: logits per field and numerics for every event slot", (e) => {
  const dec = new EventDecoder(e, config("gru"), 8, 4);
  try {
    const batch = wholeSequences(sequences, all, 16, stats);
    const shapes = e.tidy(() => {
      const out = dec.forward(e.zeros([6, 8]), batch);
      return [out.logits[0].shape, out.numeric.shape];
    });
    assert.deepEqual(shapes, [[6 * batch.steps, 24], [6 * batch.steps, 2]]);
  } finally {
    dec.dispose();
  }
});
