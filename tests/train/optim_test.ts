import assert from "node:assert/strict";
import { embedding } from "../../src/tensor/ops/embedding.ts";
import { add } from "../../src/tensor/ops/mod.ts";
import { Adam, type AdamOptions } from "../../src/train/optim.ts";
import { clipGradNorm, gradNorm } from "../../src/train/clip.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

/** Float64 Adam/AdamW state of one tensor, updated element by element. */
class AdamRef {
  m: Float64Array;
  v: Float64Array;
  constructor(public w: Float64Array, readonly o: Required<AdamOptions>) {
    this.m = new Float64Array(w.length);
    this.v = new Float64Array(w.length);
  }

  update(i: number, grad: number, t: number): void {
    const { lr, beta1, beta2, eps, weightDecay, decoupled } = this.o;
    let g = grad;
    if (decoupled) this.w[i] *= 1 - lr * weightDecay;
    else g += weightDecay * this.w[i];
    this.m[i] = beta1 * this.m[i] + (1 - beta1) * g;
    this.v[i] = beta2 * this.v[i] + (1 - beta2) * g * g;
    const mHat = this.m[i] / (1 - beta1 ** t);
    const vHat = this.v[i] / (1 - beta2 ** t);
    this.w[i] -= lr * mHat / (Math.sqrt(vHat) + eps);
  }
}

function fullOptions(o: AdamOptions): Required<AdamOptions> {
  return { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, ...o };
}

/** Embedding backward seeded with `seed` [ids.length, cols]: table.sparseGrads gets its rows. */
function lookupBackward(e: Engine, table: Tensor, ids: Int32Array, seed: Float32Array): void {
  const cols = table.shape[1];
  e.startTape();
  const out = embedding(table, e.tensor(ids, [ids.length]));
  e.backward(out, e.tensor(seed, [ids.length, cols]));
}

/** The dense float64 gradient of lookupBackward. */
function lookupGradRef(rows: number, cols: number, ids: Int32Array, seed: Float32Array) {
  const g = new Float64Array(rows * cols);
  ids.forEach((id, p) => {
    for (let c = 0; c < cols; c++) g[id * cols + c] += seed[p * cols + c];
  });
  return g;
}

const DECAY = { lr: 0.01, weightDecay: 0.1 };

for (const decoupled of [false, true]) {
  const name = decoupled ? "AdamW" : "Adam";
  gpuTest(`dense ${name} matches float64 over 3 steps`, async (e) => {
    const shapes = [[7, 13], [1]];
    const o = fullOptions({ ...DECAY, decoupled });
    const inits = shapes.map((s, k) => randomArray(s.reduce((a, b) => a * b), 40 + k));
    const params = shapes.map((s, k) => e.parameter(inits[k], s, `p${k}`));
    const refs = inits.map((w) => new AdamRef(Float64Array.from(w), o));
    const opt = new Adam(params, o);
    for (let t = 1; t <= 3; t++) {
      params.forEach((p, k) => {
        const g = randomArray(p.size, 100 * t + k, -2, 2);
        p.grad = e.tensor(g, p.shape);
        g.forEach((gi, i) => refs[k].update(i, gi, t));
      });
      opt.step();
      opt.zeroGrad();
    }
    assert.equal(opt.stepCount, 3);
    const state = opt.stateTensors();
    for (let k = 0; k < params.length; k++) {
      assertClose(await params[k].read(), refs[k].w, `${name} param ${k}`, 1e-5, 1e-6);
      assertClose(await state[`m.${k}`].read(), refs[k].m, `${name} m ${k}`, 1e-5, 1e-7);
      assertClose(await state[`v.${k}`].read(), refs[k].v, `${name} v ${k}`, 1e-5, 1e-7);
    }
  });
}

gpuTest("dense Adam updates a parameter larger than one binding window by window", async (e) => {
  await withBindingLimit(e, 1024, async () => {
    const init = randomArray(10 * 61, 50);
    const p = e.parameter(init, [10, 61], "wide");
    const ref = new AdamRef(Float64Array.from(init), fullOptions(DECAY));
    const opt = new Adam([p], DECAY);
    const g = randomArray(p.size, 51);
    p.grad = e.tensor(g, p.shape);
    g.forEach((gi, i) => ref.update(i, gi, 1));
    opt.step();
    assertClose(await p.read(), ref.w, "windowed Adam", 1e-5, 1e-6);
  });
});

gpuTest(
  "a step taken from restored state equals the uninterrupted step, bit for bit",
  async (e) => {
    const init = randomArray(33, 60);
    const grads = [1, 2, 3].map((t) => randomArray(33, 60 + t));
    const a = e.parameter(init, [3, 11], "a");
    const optA = new Adam([a], DECAY);
    for (const g of grads.slice(0, 2)) {
      a.grad = e.tensor(g, a.shape);
      optA.step();
      optA.zeroGrad();
    }
    const b = e.parameter(await a.readF32(), [3, 11], "b");
    const optB = new Adam([b], DECAY);
    optB.stepCount = optA.stepCount;
    const saved = optA.stateTensors();
    for (const [key, t] of Object.entries(optB.stateTensors())) {
      e.gpu.copy(saved[key].storage, 0, t.storage, 0, t.size * 4);
    }
    for (const [p, opt] of [[a, optA], [b, optB]] as const) {
      p.grad = e.tensor(grads[2], p.shape);
      opt.step();
    }
    assert.deepEqual(await b.read(), await a.read());
  },
);

gpuTest("Adam refuses invalid hyperparameters", () => {
  assert.throws(() => new Adam([], { lr: 0 }), /invalid lr 0/);
  assert.throws(() => new Adam([], { lr: 1, beta2: 1 }), /invalid beta2 1/);
  assert.throws(() => new Adam([], { lr: 1, eps: -1 }), /invalid eps -1/);
});

/**
 * Three steps of lazy Adam on a [rows, cols] table, each touching different rows (some many
 * times): touched rows follow float64 Adam with the global step count, every other row keeps
 * its exact bits and zero moments.
 */
async function checkLazyAdam(e: Engine, rows: number, cols: number, decoupled: boolean) {
  const o = fullOptions({ ...DECAY, decoupled });
  const init = randomArray(rows * cols, 70);
  const table = e.parameter(init, [rows, cols], "table");
  const ref = new AdamRef(Float64Array.from(init), o);
  const opt = new Adam([table], o);
  const touched = new Set<number>();
  for (let t = 1; t <= 3; t++) {
    const [lo, hi] = [[0, 0.6], [0.3, 0.9], [0.1, 0.5]][t - 1].map((f) => Math.floor(f * rows));
    const ids = randomInts(120, 80 + t, lo, hi);
    const seed = randomArray(ids.length * cols, 90 + t);
    lookupBackward(e, table, ids, seed);
    const g = lookupGradRef(rows, cols, ids, seed);
    for (const id of new Set(ids)) {
      touched.add(id);
      for (let c = 0; c < cols; c++) ref.update(id * cols + c, g[id * cols + c], t);
    }
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(touched.size < rows, "some rows stay untouched");
  const got = await table.readF32();
  const m = await opt.stateTensors()["m.0"].readF32();
  assertClose(got, ref.w, "lazy Adam rows", 1e-5, 1e-6);
  for (let r = 0; r < rows; r++) {
    if (touched.has(r)) continue;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      assert.ok(Object.is(got[i], init[i]) && m[i] === 0, `untouched row ${r} changed`);
    }
  }
}

for (const decoupled of [false, true]) {
  const name = decoupled ? "AdamW" : "Adam";
  gpuTest(`lazy ${name} updates only the touched rows`, async (e) => {
    await checkLazyAdam(e, 50, 6, decoupled);
  });
}

gpuTest("lazy Adam works window by window on a table larger than one binding", async (e) => {
  // 1 KiB bindings: 40-row windows of the 97 × 6 table and of the ~50 gradient rows.
  await withBindingLimit(e, 1024, () => checkLazyAdam(e, 97, 6, true));
});

gpuTest("Adam merges the gradients of a table looked up twice", async (e) => {
  const [rows, cols] = [12, 3];
  const init = randomArray(rows * cols, 110);
  const table = e.parameter(init, [rows, cols], "table");
  const a = randomInts(20, 111, 0, 8);
  const b = randomInts(20, 112, 4, 12);
  const seed = randomArray(20 * cols, 113);
  e.startTape();
  const out = add(embedding(table, e.tensor(a, [20])), embedding(table, e.tensor(b, [20])));
  e.backward(out, e.tensor(seed, out.shape));
  assert.equal(table.sparseGrads.length, 2);
  const ga = lookupGradRef(rows, cols, a, seed);
  const gb = lookupGradRef(rows, cols, b, seed);
  const ref = new AdamRef(Float64Array.from(init), fullOptions(DECAY));
  for (const id of new Set([...a, ...b])) {
    for (let c = 0; c < cols; c++) {
      ref.update(id * cols + c, ga[id * cols + c] + gb[id * cols + c], 1);
    }
  }
  new Adam([table], DECAY).step();
  assertClose(await table.read(), ref.w, "merged lazy Adam", 1e-5, 1e-6);
});

/**
 * A table looked up (sparse rows) that also gets a dense gradient (a fused loss) with some rows all
 * zero: the rows with a gradient follow float64 Adam, the others keep their bits and zero moments.
 */
async function checkDenseTableStep(e: Engine, rows: number, cols: number) {
  const init = randomArray(rows * cols, 120);
  const table = e.parameter(init, [rows, cols], "table");
  const ids = randomInts(15, 121, 0, 5);
  const seed = randomArray(15 * cols, 122);
  lookupBackward(e, table, ids, seed);
  const dense = randomArray(rows * cols, 123);
  dense.fill(0, 4 * cols, 7 * cols);
  dense.fill(0, 8 * cols);
  table.grad = e.tensor(dense, [rows, cols]);
  e.keep(table.grad);
  const g = lookupGradRef(rows, cols, ids, seed).map((v, i) => v + dense[i]);
  const ref = new AdamRef(Float64Array.from(init), fullOptions(DECAY));
  const touched = (r: number) => g.subarray(r * cols, (r + 1) * cols).some((v) => v !== 0);
  g.forEach((gi, i) => touched(Math.floor(i / cols)) && ref.update(i, gi, 1));
  const opt = new Adam([table], DECAY);
  opt.step();
  assert.equal(table.sparseGrads.length, 0);
  const w = await table.read();
  assertClose(w, ref.w, "dense + sparse Adam", 1e-5, 1e-6);
  const m = await opt.stateTensors()["m.0"].read();
  for (let r = 0; r < rows; r++) {
    if (touched(r)) continue;
    for (let c = 0; c < cols; c++) {
      assert.equal(w[r * cols + c], init[r * cols + c], `row ${r} keeps its bits`);
      assert.equal(m[r * cols + c], 0, `row ${r} keeps a zero moment`);
    }
  }
}

gpuTest(
  "a table's dense gradient plus sparse rows: rows with no gradient keep their bits",
  (e) => checkDenseTableStep(e, 9, 4),
);

gpuTest(
  "the same through 256-byte bindings, window by window",
  (e) => withBindingLimit(e, 256, () => checkDenseTableStep(e, 23, 5)),
);

/**
 * The item table's padding row 0: zero-initialised (as SasRec does) and never scored, so its
 * gradient is zero in every form it arrives in. One step of each update path must leave it, and
 * its moments, exactly zero, weight decay included: decoupled decay scales 0, coupled decay adds
 * wd·0 to a zero gradient.
 */
const PADDING_ROW_PATHS = ["dense", "dense + sparse rows", "sparse rows"] as const;

for (const decoupled of [false, true]) {
  for (const path of PADDING_ROW_PATHS) {
    const name = `${decoupled ? "AdamW" : "Adam"} (${path})`;
    gpuTest(`${name} leaves a zero row with a zero gradient bit-identical`, async (e) => {
      const [rows, cols] = [6, 5];
      const init = randomArray(rows * cols, 180);
      init.fill(0, 0, cols);
      const table = e.parameter(init, [rows, cols], "table");
      if (path !== "dense") {
        // Padding positions look row 0 up; their upstream gradient is zero.
        const ids = Int32Array.from([0, 3, 0, 5, 1]);
        const seed = randomArray(ids.length * cols, 181);
        ids.forEach((id, p) => id === 0 && seed.fill(0, p * cols, (p + 1) * cols));
        lookupBackward(e, table, ids, seed);
      }
      if (path !== "sparse rows") {
        const g = randomArray(rows * cols, 182);
        g.fill(0, 0, cols);
        table.grad = e.tensor(g, [rows, cols]);
        e.keep(table.grad);
      }
      const opt = new Adam([table], { ...DECAY, decoupled });
      opt.step();
      const bits = (t: Tensor) => t.read().then((v) => [...new Uint32Array(v.buffer, 0, cols)]);
      const zeros = new Array(cols).fill(0);
      const state = opt.stateTensors();
      assert.deepEqual(await bits(table), zeros, "row 0");
      assert.deepEqual(await bits(state["m.0"]), zeros, "row 0 of m");
      assert.deepEqual(await bits(state["v.0"]), zeros, "row 0 of v");
      const w = await table.read();
      assert.notDeepEqual([...w.subarray(3 * cols, 4 * cols)], [
        ...init.subarray(3 * cols, 4 * cols),
      ]);
      table.zeroGrad();
      opt.dispose();
      table.dispose();
    });
  }
}

/** One dense param, one table with two lookups, one table with dense + sparse gradients. */
function mixedGradients(e: Engine) {
  const dense = e.parameter(randomArray(91, 130), [7, 13], "dense");
  const denseGrad = randomArray(91, 131, -3, 3);
  dense.grad = e.tensor(denseGrad, dense.shape);
  const twice = e.parameter(randomArray(80, 132), [20, 4], "twice");
  const [a, b] = [randomInts(30, 133, 0, 12), randomInts(30, 134, 6, 20)];
  const [sa, sb] = [randomArray(120, 135), randomArray(120, 136)];
  lookupBackward(e, twice, a, sa);
  lookupBackward(e, twice, b, sb);
  const ga = lookupGradRef(20, 4, a, sa);
  const twiceGrad = lookupGradRef(20, 4, b, sb).map((v, i) => v + ga[i]);
  const both = e.parameter(randomArray(27, 137), [9, 3], "both");
  const ids = randomInts(10, 138, 0, 9);
  const seed = randomArray(30, 139);
  lookupBackward(e, both, ids, seed);
  const bothDense = randomArray(27, 140);
  both.grad = e.tensor(bothDense, both.shape);
  const bothGrad = lookupGradRef(9, 3, ids, seed).map((v, i) => v + bothDense[i]);
  const params = [dense, twice, both];
  const grads = [Float64Array.from(denseGrad), twiceGrad, bothGrad];
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((t, v) => t + v * v, 0), 0));
  return { params, grads, norm };
}

/** A parameter's whole gradient after clipping, densified on the host. */
async function gradOf(p: Tensor): Promise<Float32Array> {
  if (p.grad) return await p.grad.readF32();
  const out = new Float32Array(p.size);
  const cols = p.shape[1];
  const [s] = p.sparseGrads;
  const rows = await s.rows.readF32();
  s.ids.forEach((id, j) => out.set(rows.subarray(j * cols, (j + 1) * cols), id * cols));
  return out;
}

for (const maxNorm of [1.5, 1e6]) {
  gpuTest(`clipGradNorm(${maxNorm}) over dense and sparse gradients matches float64`, async (e) => {
    const { params, grads, norm } = mixedGradients(e);
    const got = await clipGradNorm(params, maxNorm).read();
    assertClose(got, [norm], "global norm", 1e-5, 0);
    const factor = Math.min(1, maxNorm / (norm + 1e-6));
    for (let k = 0; k < params.length; k++) {
      const want = grads[k].map((v) => v * factor);
      assertClose(await gradOf(params[k]), want, `clipped gradient ${k}`, 1e-5, 1e-6);
      params[k].zeroGrad();
    }
  });
}

for (const maxNorm of [1.5, 1e6]) {
  gpuTest(
    `Adam.step clipping at ${maxNorm} on the way in equals clipGradNorm, then step`,
    async (e) => {
      // Dense, row-sparse (lazy rows) and coalesced table gradients: every Adam entry.
      const stepped = async (clipInStep: boolean) => {
        const { params } = mixedGradients(e);
        const opt = new Adam(params, { lr: 0.01, weightDecay: 0.1, decoupled: true });
        if (clipInStep) {
          opt.step({ norm: gradNorm(params), maxNorm });
        } else {
          clipGradNorm(params, maxNorm);
          opt.step();
        }
        const out = [];
        for (const p of params) out.push([...await p.readF32()]);
        opt.dispose();
        for (const p of params) p.dispose();
        return out;
      };
      assert.deepEqual(await stepped(true), await stepped(false));
    },
  );
}

gpuTest("Adam.step refuses a clip norm that is not positive", (e) => {
  const p = e.parameter(new Float32Array(4), [4], "p");
  const opt = new Adam([p], { lr: 0.1 });
  assert.throws(() => opt.step({ norm: p, maxNorm: 0 }), /clip maxNorm must be > 0/);
  p.dispose();
});

gpuTest("clipGradNorm reduces a gradient larger than one binding window by window", async (e) => {
  // 20 kB bindings: 6 windows of 5000 elements, each reduced by two workgroups.
  await withBindingLimit(e, 20000, async () => {
    const p = e.parameter(new Float32Array(30000), [300, 100], "big");
    const g = randomArray(30000, 150);
    p.grad = e.tensor(g, p.shape);
    const norm = Math.sqrt(g.reduce((s, v) => s + v * v, 0));
    assertClose(await clipGradNorm([p], 2).read(), [norm], "windowed norm", 1e-5, 0);
    const want = Float64Array.from(g, (v) => (v * 2) / (norm + 1e-6));
    assertClose(await p.grad.read(), want, "windowed clip", 1e-5, 1e-7);
  });
});

/** Runs fn with the engine's storage bindings per shader stage capped at `count`. */
async function withStorageBuffers<T>(e: Engine, count: number, fn: () => Promise<T>): Promise<T> {
  const limits = e.gpu.limits;
  const saved = limits.maxStorageBuffersPerShaderStage;
  limits.maxStorageBuffersPerShaderStage = count;
  try {
    return await fn();
  } finally {
    limits.maxStorageBuffersPerShaderStage = saved;
  }
}

gpuTest(
  "gradNorm and Adam bind several tensors a dispatch, with the bits of one a dispatch",
  async (e) => {
    // 2 storage bindings: one gradient (or tensor) a dispatch; 6: five gradients of at most one
    // chunk and one tensor; 16: fifteen and three. 20 kB bindings cut `big` into windows of
    // 5000, 5000 and 2000 elements: the first two over a chunk (a dispatch each), all three
    // slots of Adam's dispatches.
    const run = async (bindings: number) => {
      const out = { norm: [] as number[], params: [] as number[][], state: [] as number[][] };
      await withStorageBuffers(e, bindings, () =>
        withBindingLimit(e, 20000, async () => {
          const { params, norm } = mixedGradients(e);
          const big = e.parameter(randomArray(12000, 170), [12000], "big");
          big.grad = e.tensor(randomArray(12000, 171, -2, 2), big.shape);
          const small = e.parameter(randomArray(5, 172), [5], "small");
          small.grad = e.tensor(randomArray(5, 173, -2, 2), small.shape);
          const all = [params[0], big, ...params.slice(1), small];
          const opt = new Adam(all, { lr: 0.01, weightDecay: 0.1 });
          const got = gradNorm(all);
          opt.step({ norm: got, maxNorm: 1.5 });
          const want = Math.hypot(norm, ...await big.grad.readF32(), ...await small.grad.readF32());
          out.norm = [...await got.readF32()];
          assertClose(out.norm, [want], "global norm", 1e-5, 0);
          for (const p of all) out.params.push([...await p.readF32()]);
          for (const t of Object.values(opt.stateTensors())) out.state.push([...await t.readF32()]);
          opt.dispose();
          for (const p of all) p.dispose();
        }));
      return out;
    };
    const one = await run(2);
    assert.deepEqual(await run(6), one);
    assert.deepEqual(await run(16), one);
  },
);

gpuTest("clipGradNorm is bit-identical run to run", async (e) => {
  const runOnce = async () => {
    const p = e.parameter(new Float32Array(50000), [50000], "p");
    p.grad = e.tensor(randomArray(50000, 160, -5, 5), p.shape);
    const norm = await clipGradNorm([p], 1).readF32();
    return [norm[0], ...(await p.grad.readF32()).subarray(0, 1000)];
  };
  assert.deepEqual(await runOnce(), await runOnce());
});

const PERIOD = 65521;

/**
 * n values of a formula with period PERIOD, built by copying the first period: the 1M-row test
 * checks against the formula, so it needs no second host copy of its 256 MB table.
 */
function periodicValues(n: number, value: (i: number) => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < Math.min(PERIOD, n); i++) out[i] = value(i);
  for (let filled = PERIOD; filled < n; filled *= 2) out.copyWithin(filled, 0, filled);
  return out;
}

gpuTest("1,000,000 × 64 table: windowed lookup, sparse backward and lazy Adam", async (e) => {
  const [rows, cols] = [1_000_000, 64];
  const rowBytes = cols * 4;
  const value = (i: number) => Math.fround(((i % PERIOD) * 7919 % PERIOD) / PERIOD - 0.5);
  const table = e.parameter(periodicValues(rows * cols, value), [rows, cols], "big table");
  const boundary = Math.floor(e.gpu.limits.maxStorageBufferBindingSize / rowBytes);
  assert.ok(boundary < rows, "the table spans two binding windows");
  const ids = new Int32Array([
    0,
    boundary - 1,
    boundary,
    boundary + 1,
    rows - 1,
    123_457,
    777_777,
    boundary - 1,
    rows - 1,
    boundary,
    31,
    rows - 1,
  ]);
  e.startTape();
  const out = embedding(table, e.tensor(ids, [3, 4]));
  const got = await out.readF32();
  ids.forEach((id, p) => {
    for (let c = 0; c < cols; c++) {
      assert.equal(got[p * cols + c], value(id * cols + c), `lookup of id ${id} at ${p}`);
    }
  });
  const seed = randomArray(ids.length * cols, 170);
  e.backward(out, e.tensor(seed, out.shape));
  const o = fullOptions({ lr: 0.01, weightDecay: 0.01, decoupled: true });
  const opt = new Adam([table], o);
  opt.step();
  const g = new Map<number, Float64Array>();
  ids.forEach((id, p) => {
    const row = g.get(id) ?? new Float64Array(cols);
    for (let c = 0; c < cols; c++) row[c] += seed[p * cols + c];
    g.set(id, row);
  });
  const readRow = async (t: Tensor, r: number) =>
    new Float32Array(await e.gpu.read(t.storage, r * rowBytes, rowBytes));
  for (const [id, grad] of g) {
    const ref = new AdamRef(Float64Array.from({ length: cols }, (_, c) => value(id * cols + c)), o);
    grad.forEach((gc, c) => ref.update(c, gc, 1));
    assertClose(await readRow(table, id), ref.w, `updated row ${id}`, 1e-5, 1e-6);
  }
  const { "m.0": m, "v.0": v } = opt.stateTensors();
  for (const r of [1, 30, 32, boundary - 2, boundary + 2, 500_000, rows - 2]) {
    const want = Float32Array.from({ length: cols }, (_, c) => value(r * cols + c));
    assert.deepEqual(await readRow(table, r), want, `untouched row ${r}`);
    assert.deepEqual(await readRow(m, r), new Float32Array(cols), `m of untouched row ${r}`);
    assert.deepEqual(await readRow(v, r), new Float32Array(cols), `v of untouched row ${r}`);
  }
  table.zeroGrad();
  for (const t of [table, m, v]) t.dispose();
  e.gpu.allocator.trimPool();
});
