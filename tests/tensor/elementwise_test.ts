import {
  add,
  gelu,
  mul,
  relu,
  scale,
  sigmoid,
  softplus,
  sub,
  tanh,
} from "../../src/tensor/ops/mod.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { accumulate } from "../../src/tensor/ops/elementwise.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

const erf = (x: number): number => {
  // Series for |x| < 3, continued fraction beyond: ~1e-15 accuracy, far below f32 tolerance.
  const a = Math.abs(x);
  if (a < 3) {
    let sum = x, term = x;
    for (let n = 1; n < 200; n++) {
      term *= -x * x / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = (n / 2) / (a + f);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return Math.sign(x) * (1 - erfc);
};

const unaryRefs: [string, (t: Tensor) => Tensor, (v: number) => number][] = [
  ["relu", relu, (v) => Math.max(v, 0)],
  ["gelu", gelu, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))],
  ["sigmoid", sigmoid, (v) => 1 / (1 + Math.exp(-v))],
  ["tanh", tanh, Math.tanh],
  ["scale", (t) => scale(t, -2.5), (v) => -2.5 * v],
  ["softplus", softplus, (v) => Math.log1p(Math.exp(v))],
];

for (const [name, op, f] of unaryRefs) {
  for (const shape of [[1], [7, 13], [3, 5, 17]]) {
    gpuTest(`${name} ${shape.join("x")} matches float64 and finite differences`, async (e) => {
      const n = shape.reduce((a, b) => a * b);
      // Keep relu's inputs away from its kink, where a finite difference is undefined.
      const data = randomArray(n, n + 1, -4, 4).map((v) => (Math.abs(v) < 0.01 ? 0.5 : v));
      await checkOp(e, {
        name,
        inputs: [{ data, shape, grad: true }],
        gpu: ([x]) => op(x),
        ref: ([x]) => x.map(f),
        rtol: 2e-5,
        atol: 2e-6,
      });
    });
  }
}

gpuTest("sigmoid, tanh and softplus stay finite for huge inputs", async (e) => {
  const x = e.tensor(new Float32Array([-1e4, -90, 90, 1e4]), [4]);
  const s = await sigmoid(x).read();
  const t = await tanh(x).read();
  const sp = await softplus(x).read();
  if (![...s, ...t, ...sp].every(Number.isFinite)) throw new Error(`not finite: ${s} ${t} ${sp}`);
});

const binaryRefs: [string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => number][] = [
  ["add", add, (a, b) => a + b],
  ["sub", sub, (a, b) => a - b],
  ["mul", mul, (a, b) => a * b],
];
// 11 × 7 takes the scalar entry, 12 × 7 the vec4 one; 1,500 × 4 floats under a 16 KiB binding
// limit take two windows.
for (const [name, op, f] of binaryRefs) {
  for (const shape of [[11, 7], [12, 7], [1500, 4]]) {
    gpuTest(`${name} ${shape.join("x")} matches float64 and finite differences`, async (e) => {
      const n = shape[0] * shape[1];
      const run = () =>
        checkOp(e, {
          name,
          inputs: [
            { data: randomArray(n, 1), shape, grad: true },
            { data: randomArray(n, 2), shape, grad: true },
          ],
          gpu: ([a, b]) => op(a, b),
          ref: ([a, b]) => a.map((v, i) => f(v, b[i])),
          maxFdElements: 40,
        });
      await (n === 6000 ? withBindingLimit(e, 16384, run) : run());
    });
  }
}

gpuTest("mul of a tensor with itself accumulates both gradients", async (e) => {
  await checkOp(e, {
    name: "square",
    inputs: [{ data: randomArray(5, 3), shape: [5], grad: true }],
    gpu: ([a]) => mul(a, a),
    ref: ([a]) => a.map((v) => v * v),
  });
});

// Sizes that are multiples of 4 take the vec4 entry, the others the scalar one; 6,000 floats under
// a 16 KiB binding limit take two windows.
for (const n of [1, 4, 7, 4100, 6000]) {
  gpuTest(`accumulate adds alpha · g in place over ${n} elements`, async (e) => {
    const a = randomArray(n, n);
    const g = randomArray(n, n + 1);
    const acc = e.tensor(a, [n]);
    const run = async () => {
      accumulate(acc, e.tensor(g, [n]), -0.5);
      assertClose(await acc.read(), a.map((v, i) => v - 0.5 * g[i]), `accumulate ${n}`);
    };
    await (n === 6000 ? withBindingLimit(e, 16384, run) : run());
  });
}
