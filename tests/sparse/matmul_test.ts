/**
 * Sparse matmuls against float64 references and against mask-then-dense on awkward shapes: one
 * token (GEMV) and a few (batched), N = 1, N = M − 1, the four patterns and unstructured, both
 * encodings; the weight-sparse backward against finite differences.
 */
import assert from "node:assert/strict";
import type { Engine } from "../../src/tensor/engine.ts";
import { matmul } from "../../src/tensor/ops/matmul.ts";
import { type NmEncoding, type NmPattern, NmTensor } from "../../src/sparse/format.ts";
import {
  decodeHost,
  type HostNm,
  keptPositions,
  matmulTransposedHost,
  pruneHost,
  pruneUnstructuredHost,
  uploadNm,
} from "../../src/sparse/host.ts";
import { pruneNm, pruneUnstructured } from "../../src/sparse/prune.ts";
import {
  sparseActivationGemv,
  sparseActivationGemvTransposed,
  sparseActivationMatmul,
  type SparseMatmulVariant,
  sparseWeightGemv,
  sparseWeightMatmul,
} from "../../src/sparse/matmul.ts";
import { SPARSE_GEMV_CHOICE, SPARSE_GEMV_VARIANTS, tuneSparseGemv } from "../../src/sparse/gemv.ts";
import {
  SPARSE_TILED_CHOICE,
  SPARSE_TILED_VARIANTS,
  tuneSparseTiled,
} from "../../src/sparse/tiled.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";

/** A pattern, or unstructured top-k of each row (k = in / 2 rounded). */
type Sparsity = NmPattern | "unstructured";

function pruneBoth(x: Float32Array, shape: number[], s: Sparsity, encoding: NmEncoding) {
  return s === "unstructured"
    ? pruneUnstructuredHost(x, shape, 1, Math.round(shape[1] / 2))
    : pruneHost(x, shape, 1, s, encoding);
}

const CASES: [Sparsity, NmEncoding, number][] = [
  [{ n: 2, m: 4 }, "combinatorial", 1],
  [{ n: 4, m: 8 }, "indices", 5],
  [{ n: 8, m: 16 }, "combinatorial", 5],
  [{ n: 16, m: 32 }, "indices", 1],
  [{ n: 1, m: 4 }, "indices", 3],
  [{ n: 7, m: 8 }, "combinatorial", 3],
  [{ n: 31, m: 32 }, "combinatorial", 1],
  ["unstructured", "indices", 4],
];

/** w [rows, cols] → [cols, rows]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

/** Forward of one role against float64 and against the dense matmul of the masked operand. */
async function checkForward(
  e: Engine,
  activation: boolean,
  s: Sparsity,
  encoding: NmEncoding,
  tokens: number,
  variant: SparseMatmulVariant,
  kernel?: string,
  [inF, out] = [s === "unstructured" ? 50 : 64, 7],
) {
  const x = randomArray(tokens * inF, 3);
  const w = randomArray(out * inF, 4);
  const [sparseShape, sparse] = activation ? [[tokens, inF], x] : [[out, inF], w];
  const { nm } = pruneBoth(sparse, sparseShape, s, encoding);
  const dense = decodeHost(nm);
  const want = activation
    ? matmulTransposedHost(dense, w, tokens, out, inF)
    : matmulTransposedHost(x, dense, tokens, out, inF);
  const what = `${activation ? "activation" : "weight"}-sparse ${
    s === "unstructured" ? s : `${s.n}:${s.m}`
  } ${encoding} T=${tokens} ${inF}→${out} ${variant} ${kernel ?? ""}`;
  await e.tidyAsync(async () => {
    const sparseT = e.tensor(sparse, sparseShape);
    const pruned = s === "unstructured"
      ? pruneUnstructured(sparseT, Math.round(inF / 2), { masked: true })
      : pruneNm(sparseT, s, { encoding, masked: true });
    const xt = e.tensor(x, [tokens, inF]);
    const wt = e.tensor(w, [out, inF]);
    const transposed = SPARSE_GEMV_VARIANTS.find((v) => v.name === kernel)?.shape === "cols";
    const y = transposed
      ? sparseActivationGemvTransposed(
        pruned.nm,
        e.tensor(transpose(w, out, inF), [inF, out]),
        kernel,
      )
      : activation
      ? sparseActivationMatmul(pruned.nm, wt, { variant, kernel })
      : sparseWeightMatmul(xt, pruned.nm, { variant, kernel });
    const got = await y.read();
    assertClose(got, want, what);
    const viaDense = activation
      ? matmul(pruned.masked!, wt, { transB: true })
      : matmul(xt, pruned.masked!, { transB: true });
    assertClose(got, await viaDense.read(), `${what} against mask-then-dense`);
  });
}

for (const activation of [true, false]) {
  const role = activation ? "activation-sparse S(X)·Wᵀ" : "weight-sparse X·S(W)ᵀ";
  gpuTest(`${role} matches float64 and mask-then-dense (default kernels)`, async (e) => {
    for (const [s, encoding, tokens] of CASES) {
      await checkForward(e, activation, s, encoding, tokens, "batched");
      await checkForward(e, activation, s, encoding, tokens, "untiled");
      if (tokens === 1) await checkForward(e, activation, s, encoding, tokens, "gemv");
    }
  });

  gpuTest(`${role}: every GEMV and tiled kernel on awkward shapes`, async (e) => {
    // One output; outputs and tokens off every tile; rows cut into several chunks (in = 96, 100).
    // Each kernel takes some of the shapes in turn (llvmpipe compiles a pipeline per kernel and
    // metadata kind for seconds to minutes); together they meet every kind.
    const shapes: [Sparsity, NmEncoding, number, number][] = [
      [{ n: 8, m: 16 }, "combinatorial", 96, 1],
      [{ n: 8, m: 16 }, "indices", 96, 37],
      [{ n: 16, m: 32 }, "combinatorial", 64, 5],
      ["unstructured", "indices", 100, 9],
      [{ n: 3, m: 7 }, "combinatorial", 70, 33],
      [{ n: 1, m: 4 }, "indices", 8, 1],
    ];
    // "cols" kernels take W transposed: activation sparsity only.
    const gemvs = SPARSE_GEMV_VARIANTS.filter((v) => activation || v.shape !== "cols");
    for (const [i, v] of gemvs.entries()) {
      const [s, encoding, inF, out] = shapes[i % shapes.length];
      await checkForward(e, activation, s, encoding, 1, "gemv", v.name, [inF, out]);
    }
    for (const [i, v] of SPARSE_TILED_VARIANTS.entries()) {
      for (const [s, encoding, inF, out] of [shapes[i], shapes[i + 3]]) {
        await checkForward(e, activation, s, encoding, 35, "batched", v.name, [inF, out]);
      }
    }
    // 16:32 codes (no mask table) on rows of 2048: the tiled kernel takes several passes.
    await checkForward(e, activation, { n: 16, m: 32 }, "combinatorial", 3, "batched", undefined, [
      2048,
      5,
    ]);
  });
}

/** dX and dW (kept values) of the weight-sparse product against finite differences. */
async function checkBackward(e: Engine, s: Sparsity, encoding: NmEncoding, tokens: number) {
  const inF = s === "unstructured" ? 12 : 16;
  const out = 5;
  const { nm } = pruneBoth(randomArray(out * inF, 8), [out, inF], s, encoding);
  await checkOp(e, {
    name: `weight-sparse backward ${s === "unstructured" ? s : `${s.n}:${s.m}`} ${encoding}`,
    inputs: [
      { data: randomArray(tokens * inF, 9), shape: [tokens, inF], grad: true },
      { data: Float32Array.from(nm.values), shape: nm.layout.valuesShape, grad: true },
    ],
    gpu: ([x, values]) => {
      const uploaded = uploadNm(e, nm);
      uploaded.values.dispose();
      return sparseWeightMatmul(x, new NmTensor(nm.layout, values, uploaded.meta));
    },
    ref: ([x, values]) => {
      const dense = decodeHost({ ...nm, values } as HostNm);
      return matmulTransposedHost(x, dense, tokens, out, inF);
    },
  });
}

gpuTest("weight-sparse backward: dX and dW at kept positions by finite differences", async (e) => {
  await checkBackward(e, { n: 2, m: 4 }, "combinatorial", 3);
  await checkBackward(e, { n: 1, m: 4 }, "indices", 1);
  await checkBackward(e, { n: 7, m: 8 }, "indices", 2);
  await checkBackward(e, { n: 8, m: 16 }, "combinatorial", 1);
  await checkBackward(e, "unstructured", "indices", 2);
});

gpuTest("sparse matmuls refuse mismatched operands and a GEMV of several tokens", (e) => {
  const { nm } = pruneNm(e.zeros([3, 8]), { n: 2, m: 4 });
  assert.throws(() => sparseActivationMatmul(nm, e.zeros([4, 12])), /sparseActivationMatmul/);
  assert.throws(() => sparseWeightMatmul(e.zeros([2, 12]), nm), /do not match/);
  assert.throws(
    () => sparseActivationMatmul(nm, e.zeros([4, 8]), { variant: "gemv" }),
    /GEMV variant takes one token, got 3/,
  );
  const one = pruneNm(e.zeros([1, 8]), { n: 2, m: 4 }).nm;
  assert.throws(() => sparseWeightGemv(e.zeros([1, 8]), one, "cols wg8 r16"), /does not take/);
  assert.throws(() => sparseActivationGemvTransposed(one, e.zeros([4, 8])), /do not match/);
  assert.throws(() => sparseActivationGemvTransposed(nm, e.zeros([8, 4])), /one token/);
  assert.throws(
    () => sparseActivationMatmul(nm, e.zeros([4, 8]), { kernel: "nope" }),
    /unknown sparse tiled variant/,
  );
});

gpuTest(
  "the weight-sparse backward in several passes matches the masked dense backward",
  async (e) => {
    // Unstructured 1024 of 2048: 40 outputs and 40 tokens take two passes of each gradient kernel.
    const [tokens, out, inF] = [40, 40, 2048];
    const x = randomArray(tokens * inF, 11);
    const w = randomArray(out * inF, 12);
    const g = randomArray(tokens * out, 13);
    const host = pruneUnstructuredHost(w, [out, inF], 1, inF / 2);
    await e.tidyAsync(async () => {
      const xt = e.tensor(x, [tokens, inF]);
      xt.requiresGrad = true;
      const nm = uploadNm(e, host.nm);
      nm.values.requiresGrad = true;
      const masked = e.tensor(Float32Array.from(host.masked), [out, inF]);
      masked.requiresGrad = true;
      e.startTape();
      e.backward(sparseWeightMatmul(xt, nm), e.tensor(g, [tokens, out]));
      const dx = await xt.grad!.read();
      const dvalues = await nm.values.grad!.read();
      xt.zeroGrad();
      e.startTape();
      e.backward(matmul(xt, masked, { transB: true }), e.tensor(g, [tokens, out]));
      assertClose(dx, await xt.grad!.read(), "dX");
      const dDense = await masked.grad!.read();
      const kept = Array.from(
        { length: out },
        (_, o) => keptPositions(host.nm, o).map((c) => dDense[o * inF + c]),
      );
      assertClose(dvalues, kept.flat(), "dW at kept positions");
    });
  },
);

gpuTest("tuning keeps the fastest sparse GEMV and tiled kernel for the engine", async (e) => {
  await e.tidyAsync(async () => {
    const w = e.tensor(randomArray(9 * 32, 1), [9, 32]);
    const x1 = pruneNm(e.tensor(randomArray(32, 2), [1, 32]), { n: 8, m: 16 }).nm;
    const x5 = pruneNm(e.tensor(randomArray(5 * 32, 3), [5, 32]), { n: 8, m: 16 }).nm;
    const gemv = await tuneSparseGemv(e, (kernel) => sparseActivationGemv(x1, w, kernel), 1);
    assert.equal(
      Object.keys(gemv.times).length,
      SPARSE_GEMV_VARIANTS.filter((v) => v.shape !== "cols").length,
    );
    assert.equal(SPARSE_GEMV_CHOICE.of(e), gemv.variant);
    const tiled = await tuneSparseTiled(
      e,
      (kernel) => sparseActivationMatmul(x5, w, { variant: "batched", kernel }),
      1,
    );
    assert.equal(Object.keys(tiled.times).length, SPARSE_TILED_VARIANTS.length);
    assert.equal(SPARSE_TILED_CHOICE.of(e), tiled.variant);
  });
});
