import assert from "node:assert/strict";
import {
  ByteTokenizer,
  CharTokenizer,
  RandomWindows,
  splitText,
  tilingWindows,
  tokenizerFromSpec,
} from "../../src/data/text.ts";

Deno.test("the char tokenizer sorts the text's characters and round-trips", () => {
  const t = CharTokenizer.fromText("hello, wörld\n");
  assert.deepEqual(t.chars, ["\n", " ", ",", "d", "e", "h", "l", "o", "r", "w", "ö"]);
  const ids = t.encode("world");
  assert.equal(t.decode(ids), "world");
  assert.throws(() => t.encode("x"), /"x" is not in the vocabulary of 11/);
  const again = tokenizerFromSpec(JSON.parse(JSON.stringify(t.spec())));
  assert.deepEqual(again.encode("hello"), t.encode("hello"));
});

Deno.test("the byte tokenizer encodes UTF-8", () => {
  const t = new ByteTokenizer();
  assert.deepEqual(t.encode("aé"), [97, 0xc3, 0xa9]);
  assert.equal(t.decode([97, 0xc3, 0xa9]), "aé");
  assert.equal(tokenizerFromSpec(t.spec()).vocabSize, 256);
});

Deno.test("the split keeps the first 90% of characters for training, contiguous", () => {
  const text = "abcdefghij".repeat(3);
  const t = CharTokenizer.fromText(text);
  const s = splitText(text, t);
  assert.equal(s.train.length, 27);
  assert.equal(t.decode([...s.valid]), "hij");
  assert.equal(s.validChars, 3);
});

Deno.test("random windows: targets are the inputs shifted, epochs are reproducible", () => {
  const tokens = Int32Array.from({ length: 50 }, (_, i) => i);
  const w = new RandomWindows(tokens, { batchSize: 3, seqLen: 7, stepsPerEpoch: 4, seed: 5 });
  const a = [...w.epoch(2)];
  assert.equal(a.length, 4);
  for (const b of a) {
    for (let i = 0; i < b.inputs.length; i++) assert.equal(b.targets[i], b.inputs[i] + 1);
    for (let r = 0; r < 3; r++) assert.ok(b.inputs[r * 7] + 7 < 50);
  }
  assert.deepEqual([...w.epoch(2)], a);
  assert.notDeepEqual([...w.epoch(3)][0].inputs, a[0].inputs);
  assert.throws(
    () => new RandomWindows(tokens, { batchSize: 1, seqLen: 50, stepsPerEpoch: 1, seed: 0 }),
    /fewer than one window of 51/,
  );
});

Deno.test("tiling windows cover the tokens once, in batches, up to a limit", () => {
  const tokens = Int32Array.from({ length: 23 }, (_, i) => i);
  const all = [...tilingWindows(tokens, 5, 3)];
  assert.deepEqual(all.map((b) => b.batch), [3, 1]);
  assert.deepEqual([...all[0].targets.subarray(0, 5)], [1, 2, 3, 4, 5]);
  assert.deepEqual([...all[1].inputs], [15, 16, 17, 18, 19]);
  assert.equal([...tilingWindows(tokens, 5, 3, 11)].reduce((n, b) => n + b.batch, 0), 2);
});
