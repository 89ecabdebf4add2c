/**
 * The one-token activation-sparse GEMVs beside tests/sparse/matmul_test.ts: against W stored
 * transposed with outputs a multiple of 4 (sparse_gemv_cols.wgsl, wt read as vec4s) in every
 * "cols" variant, patterns and encodings, outputs off every block; and walks so long that the
 * kernels' unrolled loops over their outputs, were they counted, would stop llvmpipe's loops.
 */
import type { Engine } from "../../src/tensor/engine.ts";
import type { NmEncoding, NmPattern } from "../../src/sparse/format.ts";
import {
  decodeHost,
  type HostNm,
  matmulTransposedHost,
  pruneHost,
  pruneUnstructuredHost,
  uploadNm,
} from "../../src/sparse/host.ts";
import { sparseActivationGemv, sparseActivationGemvTransposed } from "../../src/sparse/matmul.ts";
import { SPARSE_GEMV_VARIANTS } from "../../src/sparse/gemv.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

/** w [rows, cols] → [cols, rows]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

type Sparsity = NmPattern | "unstructured";

function pruneToken(x: Float32Array, s: Sparsity, encoding: NmEncoding): HostNm {
  return s === "unstructured"
    ? pruneUnstructuredHost(x, [1, x.length], 1, Math.round(x.length / 2)).nm
    : pruneHost(x, [1, x.length], 1, s, encoding).nm;
}

/** y = S(x)·Wᵀ by `kernel` (against wt for "cols" kernels) against float64. */
async function checkGemv(
  e: Engine,
  s: Sparsity,
  encoding: NmEncoding,
  [inF, out]: [number, number],
  kernel: string,
) {
  const x = randomArray(inF, inF + 1);
  const w = randomArray(out * inF, out + 2);
  const nm = pruneToken(x, s, encoding);
  const want = matmulTransposedHost(decodeHost(nm), w, 1, out, inF);
  const cols = SPARSE_GEMV_VARIANTS.find((v) => v.name === kernel)!.shape === "cols";
  await e.tidyAsync(async () => {
    const y = cols
      ? sparseActivationGemvTransposed(
        uploadNm(e, nm),
        e.tensor(transpose(w, out, inF), [inF, out]),
        kernel,
      )
      : sparseActivationGemv(uploadNm(e, nm), e.tensor(w, [out, inF]), kernel);
    const what = `${
      s === "unstructured" ? s : `${s.n}:${s.m}`
    } ${encoding} ${inF}→${out} ${kernel}`;
    assertClose(await y.read(), want, what);
  });
}

gpuTest("activation-sparse GEMV on wt read as vec4s: every cols variant", async (e) => {
  // Outputs a multiple of 4 but of no block (4, 36, 516 against 32 to 512 per workgroup); codes
  // by the mask table and by the greedy walk (16:32), indices (4:8: fields straddling words),
  // N = 1, N = M − 1, unstructured.
  const cases: [Sparsity, NmEncoding, [number, number]][] = [
    [{ n: 8, m: 16 }, "combinatorial", [96, 4]],
    [{ n: 8, m: 16 }, "indices", [64, 36]],
    [{ n: 16, m: 32 }, "combinatorial", [64, 516]],
    [{ n: 1, m: 4 }, "indices", [8, 12]],
    [{ n: 7, m: 8 }, "combinatorial", [24, 8]],
    ["unstructured", "indices", [50, 20]],
    [{ n: 4, m: 8 }, "indices", [40, 28]],
    [{ n: 16, m: 32 }, "indices", [96, 8]],
  ];
  const cols = SPARSE_GEMV_VARIANTS.filter((v) => v.shape === "cols");
  for (const [i, v] of cols.entries()) {
    for (const [s, encoding, shape] of [cases[i % cases.length], cases[(i + 4) % cases.length]]) {
      await checkGemv(e, s, encoding, shape, v.name);
    }
  }
});

gpuTest(
  "activation-sparse GEMVs sum every kept input of rows far past the loop budget",
  async (e) => {
    // 8192 kept inputs: the vec4 walk of 16 vec4s (cols wg8 r64) and of 16 rows (rows wg8 r16) would
    // count 139,264 iterations unrolled loops included, twice llvmpipe's limit.
    await checkGemv(e, { n: 8, m: 16 }, "indices", [16384, 8], "cols wg8 r64");
    await checkGemv(e, { n: 8, m: 16 }, "combinatorial", [16384, 7], "cols wg8 r64");
    await checkGemv(e, { n: 8, m: 16 }, "indices", [16384, 17], "rows wg8 r16");
  },
);
