import assert from "node:assert/strict";
import { addBias } from "../../src/tensor/ops/bias.ts";
import "../../src/tensor/ops/mod.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

const addBiasRef = ([x, b]: Float64Array[]) => x.map((v, i) => v + b[i % b.length]);

for (const shape of [[1], [1, 1], [13, 1], [7, 13], [3, 5, 17], [1000, 3], [2, 300]]) {
  gpuTest(`addBias ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const n = shape.reduce((a, b) => a * b);
    const cols = shape[shape.length - 1];
    await checkOp(e, {
      name: "addBias",
      inputs: [
        { data: randomArray(n, n), shape, grad: true },
        { data: randomArray(cols, cols + 1), shape: [cols], grad: true },
      ],
      gpu: ([x, b]) => addBias(x, b),
      ref: addBiasRef,
    });
  });
}

smallBindingTest("addBias over more rows than one binding holds", async (e) => {
  const cols = 29;
  const rows = Math.ceil((2 * SMALL_BINDING_BYTES) / (cols * 4)) + 3;
  await checkOp(e, {
    name: "windowed addBias",
    inputs: [
      { data: randomArray(rows * cols, 1), shape: [rows, cols], grad: true },
      { data: randomArray(cols, 2), shape: [cols], grad: true },
    ],
    gpu: ([x, b]) => addBias(x, b),
    ref: addBiasRef,
  });
});

gpuTest("the bias gradient is bit-identical across runs", async (e) => {
  const [rows, cols] = [20_011, 67];
  const x = e.tensor(randomArray(rows * cols, 3), [rows, cols]);
  const b = e.tensor(randomArray(cols, 4), [cols]);
  b.requiresGrad = true;
  const g = randomArray(rows * cols, 5);
  const grads = [];
  for (let run = 0; run < 2; run++) {
    e.startTape();
    e.backward(addBias(x, b), e.tensor(g, [rows, cols]));
    grads.push(await b.grad!.readF32());
    b.zeroGrad();
  }
  assert.deepEqual(grads[0], grads[1]);
});

gpuTest("addBias names both shapes when the bias does not fit", (e) => {
  const x = e.tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => addBias(x, e.tensor(new Float32Array(2), [2])), (err: Error) => {
    return err instanceof ShapeError && err.message.includes("[2]") &&
      err.message.includes("[2, 3]");
  });
});
