import assert from "node:assert/strict";
import { dropout, dropoutKeeps } from "../../src/tensor/ops/dropout.ts";
import "../../src/tensor/ops/mod.ts";
import { randomU32 } from "../../src/tensor/random.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

/** dropout on the host in float32 arithmetic, from the host generator. */
function hostDropout(x: ArrayLike<number>, p: number, seed: number, step: number): Float32Array {
  const scale = Math.fround(1 / (1 - p));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    out[i] = dropoutKeeps(p, seed, step, i) ? Math.fround(x[i] * scale) : 0;
  }
  return out;
}

function assertBitsEqual(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i])) {
      assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]}`);
    }
  }
}

gpuTest("dropout keeps 1-p of 1M elements and its mask is the host generator's", async (e) => {
  const n = 1_000_000;
  const p = 0.3;
  const x = randomArray(n, 1, 0.5, 2);
  const y = await dropout(e.tensor(x, [1000, 1000]), p, 17, 4).readF32();
  assertBitsEqual(y, hostDropout(x, p, 17, 4), "dropout forward");
  const kept = y.reduce((c, v) => c + (v !== 0 ? 1 : 0), 0);
  // Binomial(1M, 0.7): sd 458; five of them.
  assert.ok(Math.abs(kept - n * (1 - p)) < 2300, `kept ${kept} of ${n} at p = ${p}`);
});

Deno.test("the mask is the raw draw compared with p · 2^32", () => {
  for (let i = 0; i < 1000; i++) {
    assert.equal(dropoutKeeps(0.25, 3, 9, i), randomU32(3, 9, i) >= 2 ** 30);
  }
});

gpuTest("dropout backward is mask · g / (1 - p)", async (e) => {
  const shape = [37, 29];
  const n = 37 * 29;
  const p = 0.6;
  const x = e.tensor(randomArray(n, 2), shape);
  x.requiresGrad = true;
  const g = randomArray(n, 3);
  e.startTape();
  const y = dropout(x, p, 5, 11);
  e.backward(y, e.tensor(g, shape));
  assertBitsEqual(await x.grad!.readF32(), hostDropout(g, p, 5, 11), "dropout backward");
  x.zeroGrad();
});

for (const shape of [[1], [7, 13], [3, 5, 17]]) {
  gpuTest(`dropout ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const n = shape.reduce((a, b) => a * b);
    await checkOp(e, {
      name: "dropout",
      inputs: [{ data: randomArray(n, n), shape, grad: true }],
      gpu: ([x]) => dropout(x, 0.5, 123, 1),
      ref: ([x]) => x.map((v, i) => (dropoutKeeps(0.5, 123, 1, i) ? 2 * v : 0)),
    });
  });
}

gpuTest("dropout is deterministic per (seed, step) and changes with the step", async (e) => {
  const n = 100_003;
  const x = e.tensor(randomArray(n, 4, 0.5, 1), [n]);
  const a = await dropout(x, 0.5, 8, 100).readF32();
  const b = await dropout(x, 0.5, 8, 100).readF32();
  const c = await dropout(x, 0.5, 8, 101).readF32();
  const d = await dropout(x, 0.5, 9, 100).readF32();
  assertBitsEqual(a, b, "same seed and step");
  const differ = (u: Float32Array, v: Float32Array) =>
    u.reduce((k, _, i) => k + ((u[i] === 0) !== (v[i] === 0) ? 1 : 0), 0) / n;
  // Independent masks at p = 0.5 disagree on half of the elements.
  assert.ok(Math.abs(differ(a, c) - 0.5) < 0.01, `other step: ${differ(a, c)} differ`);
  assert.ok(Math.abs(differ(a, d) - 0.5) < 0.01, `other seed: ${differ(a, d)} differ`);
});

gpuTest("dropout with p = 0 is the identity and launches nothing", async (e) => {
  const x = e.tensor(randomArray(10, 5), [10]);
  await e.gpu.sync();
  const before = e.gpu.dispatches;
  assert.equal(dropout(x, 0, 1, 1), x);
  assert.equal(e.gpu.dispatches, before);
});

smallBindingTest("dropout of a tensor larger than one binding draws global counters", async (e) => {
  const n = (2 * SMALL_BINDING_BYTES) / 4 + 333;
  const x = randomArray(n, 6);
  const y = await dropout(e.tensor(x, [n]), 0.1, 77, 2).readF32();
  assertBitsEqual(y, hostDropout(x, 0.1, 77, 2), "windowed dropout");
});

gpuTest("dropout rejects p outside [0, 1) and seeds outside u32", (e) => {
  const x = e.tensor([1, 2, 3], [3]);
  assert.throws(() => dropout(x, 1, 0, 0), RangeError);
  assert.throws(() => dropout(x, -0.1, 0, 0), RangeError);
  assert.throws(() => dropout(x, 0.5, -1, 0), RangeError);
  assert.throws(() => dropout(x, 0.5, 0, 2 ** 32), RangeError);
});
