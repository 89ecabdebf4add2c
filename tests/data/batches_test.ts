import assert from "node:assert/strict";
import {
  BatchIterator,
  evalBatches,
  fillHistoryRow,
  fillTrainingRow,
  packBatch,
} from "../../src/data/batches.ts";

const rows = (a: Int32Array, L: number) =>
  Array.from({ length: a.length / L }, (_, r) => Array.from(a.subarray(r * L, r * L + L)));

Deno.test("training rows: left padding, shift by one, truncation to the last seqLen", () => {
  const L = 4;
  const inputs = new Int32Array(3 * L);
  const targets = new Int32Array(3 * L);
  assert.equal(fillTrainingRow(Int32Array.of(5, 6, 7), L, inputs, targets, 0), 2);
  assert.equal(fillTrainingRow(Int32Array.of(1, 2, 3, 4, 5, 6, 7), L, inputs, targets, 1), 4);
  assert.equal(fillTrainingRow(Int32Array.of(9), L, inputs, targets, 2), 0);
  assert.deepEqual(rows(inputs, L), [[0, 0, 5, 6], [3, 4, 5, 6], [0, 0, 0, 0]]);
  assert.deepEqual(rows(targets, L), [[0, 0, 6, 7], [4, 5, 6, 7], [0, 0, 0, 0]]);
  // Exactly seqLen + 1 items fill the row with no padding.
  const i2 = new Int32Array(L);
  const t2 = new Int32Array(L);
  fillTrainingRow(Int32Array.of(1, 2, 3, 4, 5), L, i2, t2, 0);
  assert.deepEqual([Array.from(i2), Array.from(t2)], [[1, 2, 3, 4], [2, 3, 4, 5]]);
});

Deno.test("history rows: left padding and truncation", () => {
  const out = new Int32Array(6);
  fillHistoryRow(Int32Array.of(1, 2), 3, out, 0);
  fillHistoryRow(Int32Array.of(1, 2, 3, 4), 3, out, 1);
  assert.deepEqual(rows(out, 3), [[0, 1, 2], [2, 3, 4]]);
});

Deno.test("BatchIterator: seeded shuffle per epoch, every user once, last partial batch kept", () => {
  const train = Array.from(
    { length: 11 },
    (_, u) => Int32Array.from({ length: u % 5 }, (_, i) => i + 1),
  );
  // Users with u % 5 < 2 have no pair: 0, 1, 5, 6, 10 are skipped.
  const it = new BatchIterator(train, { batchSize: 4, seqLen: 3, seed: 7 });
  assert.deepEqual(Array.from(it.users), [2, 3, 4, 7, 8, 9]);
  assert.equal(it.batchesPerEpoch, 2);
  const epoch0 = [...it.epoch(0)];
  assert.deepEqual(epoch0.map((b) => b.batch), [4, 2]);
  assert.equal(epoch0[1].inputs.length, 2 * 3);
  const seen = epoch0.flatMap((b) => Array.from(b.users)).sort((a, b) => a - b);
  assert.deepEqual(seen, [2, 3, 4, 7, 8, 9]);
  for (const b of epoch0) {
    let positions = 0;
    b.users.forEach((u, r) => {
      const s = train[u];
      const want = Math.min(s.length - 1, 3);
      assert.deepEqual(
        Array.from(b.targets.subarray(r * 3 + 3 - want, r * 3 + 3)),
        Array.from(s.subarray(s.length - want)),
      );
      positions += want;
    });
    assert.equal(b.positions, positions);
    assert.equal(b.seqLen, 3);
  }
  const again = [...new BatchIterator(train, { batchSize: 4, seqLen: 3, seed: 7 }).epoch(0)];
  assert.deepEqual(again.map((b) => Array.from(b.users)), epoch0.map((b) => Array.from(b.users)));
  const orders = new Set(
    [0, 1, 2, 3, 4].map((e) => [...it.epoch(e)].flatMap((b) => Array.from(b.users)).join(",")),
  );
  assert.ok(orders.size > 1, "epochs should be shuffled differently");
});

Deno.test("evalBatches: targets, users and truncated histories in order", () => {
  const examples = [
    { user: 4, history: Int32Array.of(1, 2, 3, 4, 5), target: 6 },
    { user: 2, history: Int32Array.of(7), target: 8 },
    { user: 9, history: Int32Array.of(2, 3), target: 1 },
  ];
  const batches = [...evalBatches(examples, 2, 3)];
  assert.deepEqual(batches.map((b) => b.batch), [2, 1]);
  assert.deepEqual(rows(batches[0].inputs, 3), [[3, 4, 5], [0, 0, 7]]);
  assert.deepEqual(Array.from(batches[0].targets), [6, 8]);
  assert.deepEqual(Array.from(batches[1].users), [9]);
  assert.equal(batches[1].examples[0].history.length, 2);
});

Deno.test("packBatch: real positions back to back, with their padded position indices", () => {
  const train = [new Int32Array([1, 2, 3]), new Int32Array([4, 5]), new Int32Array([6, 7, 8, 9])];
  const it = new BatchIterator(train, { batchSize: 3, seqLen: 4, seed: 0 });
  const [batch] = [...it.epoch(0)];
  const packed = packBatch(batch);
  assert.equal(packed.rows, 3);
  assert.equal(packed.inputs.length, batch.positions);
  let at = 0;
  for (let r = 0; r < batch.batch; r++) {
    const seq = train[batch.users[r]];
    const length = Math.min(seq.length - 1, 4);
    assert.equal(packed.offsets[r], at);
    assert.deepEqual([...packed.inputs.subarray(at, at + length)], [...seq.subarray(0, length)]);
    assert.deepEqual([...packed.targets.subarray(at, at + length)], [...seq.subarray(1)]);
    assert.deepEqual(
      [...packed.positions.subarray(at, at + length)],
      Array.from({ length }, (_, j) => 4 - length + j),
    );
    at += length;
  }
  assert.equal(packed.offsets[3], at);
  assert.equal(packed.maxLength, 3);
});

Deno.test("a token budget cuts batches by real positions, every user once per epoch", () => {
  const train = Array.from({ length: 40 }, (_, u) => new Int32Array(2 + (u % 7)).fill(1));
  const it = new BatchIterator(train, { batchSize: 100, seqLen: 5, seed: 3, tokensPerBatch: 12 });
  const batches = [...it.epoch(0)];
  assert.equal(batches.length, it.batchesPerEpoch);
  for (const b of batches) assert.ok(b.positions <= 12, `${b.positions} positions`);
  const seen = batches.flatMap((b) => [...b.users]).sort((a, b) => a - b);
  assert.deepEqual(seen, Array.from({ length: 40 }, (_, u) => u));
  assert.throws(
    () => new BatchIterator(train, { batchSize: 4, seqLen: 5, seed: 0, tokensPerBatch: 4 }),
    /tokensPerBatch must be ≥ seqLen \(5\)/,
  );
});
