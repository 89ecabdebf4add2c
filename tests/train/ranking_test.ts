import assert from "node:assert/strict";
import type { Engine } from "../../src/tensor/engine.ts";
import {
  type ExcludedItems,
  maskScores,
  maskSpan,
  TARGET_RANK_SEGMENT,
  targetRankLoops,
  targetRanks,
  targetRanksInSegments,
  TOP_K_SEGMENT,
  topK,
  topKInSegments,
  topKLoops,
} from "../../src/train/ranking.ts";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import { gpuTest, randomInts, rng } from "../support/check.ts";
import { smallBindingTest } from "../support/small_bindings.ts";

/** Scores with many exact ties (a few levels) and signed zeros, so tie-breaking is exercised. */
function tiedScores(n: number, seed: number, levels = 7): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.floor(r() * levels) - (levels >> 1);
    out[i] = v === 0 && r() < 0.5 ? -0 : v / 4;
  }
  return out;
}

/** Continuous scores: ties are rare. */
function spreadScores(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() - 0.5) * 20;
  return out;
}

/** Random histories (with repeats, sometimes the target, sometimes empty) as CSR. */
function histories(rows: number, cols: number, seed: number, targets: Int32Array, maxLen = 20) {
  const r = rng(seed);
  const offsets = new Int32Array(rows + 1);
  const items: number[] = [];
  for (let u = 0; u < rows; u++) {
    const len = Math.floor(r() * Math.min(maxLen, cols + 1));
    for (let i = 0; i < len; i++) items.push(Math.floor(r() * cols));
    if (r() < 0.25) items.push(targets[u]);
    offsets[u + 1] = items.length;
  }
  return { offsets, items: Int32Array.from(items) };
}

/** The peer's masking: column 0 and every history item become -Infinity. */
function refMask(scores: Float32Array, rows: number, cols: number, ex?: ExcludedItems) {
  const out = Float32Array.from(scores);
  for (let u = 0; u < rows; u++) {
    out[u * cols] = -Infinity;
    if (!ex) continue;
    for (let i = ex.offsets[u]; i < ex.offsets[u + 1]; i++) out[u * cols + ex.items[i]] = -Infinity;
  }
  return out;
}

function refRank(row: Float32Array, target: number): number {
  const t = row[target];
  let n = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > t) n++;
  return n;
}

/** Top k by (score desc, id asc); -1 past the end of a short row. */
function refTopK(row: Float32Array, k: number): number[] {
  const keff = Math.min(k, row.length);
  const threshold = Float32Array.from(row).sort()[row.length - keff];
  const ids: number[] = [];
  for (let i = 0; i < row.length; i++) if (row[i] >= threshold) ids.push(i);
  ids.sort((a, b) => (row[a] === row[b] ? a - b : row[b] - row[a]));
  const out = ids.slice(0, keff);
  while (out.length < k) out.push(-1);
  return out;
}

interface Case {
  rows: number;
  cols: number;
  ks: number[];
  seed: number;
  tied: boolean;
  keepSeen: boolean;
}

/** Masks, ranks and top-k on the GPU, each checked against the references on every row. */
async function checkAll(e: Engine, c: Case, checkMask = true): Promise<void> {
  const { rows, cols } = c;
  const data = c.tied ? tiedScores(rows * cols, c.seed) : spreadScores(rows * cols, c.seed);
  const targets = randomInts(rows, c.seed + 1, 0, cols);
  const ex = c.keepSeen ? undefined : histories(rows, cols, c.seed + 2, targets);
  const masked = refMask(data, rows, cols, ex);
  await e.tidyAsync(async () => {
    const scores = e.tensor(data, [rows, cols], "f32", "scores");
    maskScores(scores, ex);
    if (checkMask) {
      const got = new Uint32Array((await scores.readF32()).buffer);
      assert.deepEqual(got, new Uint32Array(masked.buffer), "masked scores (bit for bit)");
    }
    const ranks = await targetRanks(scores, targets).read();
    const want = Array.from(
      targets,
      (t, u) => refRank(masked.subarray(u * cols, (u + 1) * cols), t),
    );
    assert.deepEqual(Array.from(ranks), want, "target ranks");
    for (const k of c.ks) {
      const top = await topK(scores, k).read();
      for (let u = 0; u < rows; u++) {
        assert.deepEqual(
          Array.from(top.subarray(u * k, (u + 1) * k)),
          refTopK(masked.subarray(u * cols, (u + 1) * cols), k),
          `top ${k} of row ${u} (${rows}×${cols})`,
        );
      }
    }
  });
}

const shapes: [number, number][] = [
  [1, 1],
  [1, 2],
  [3, 2],
  [2, 3],
  [1, 97],
  [5, 256],
  [7, 257],
  [4, 1031],
  [3, 4099],
];
for (const [rows, cols] of shapes) {
  for (const tied of [true, false]) {
    gpuTest(`ranking ops on ${rows}×${cols} ${tied ? "tied" : "spread"} scores`, async (e) => {
      await checkAll(e, {
        rows,
        cols,
        ks: [1, 5, 10, 128],
        seed: rows * 1000 + cols,
        tied,
        keepSeen: false,
      });
      await checkAll(e, { rows, cols, ks: [1, 10], seed: cols + 7, tied, keepSeen: true });
    });
  }
}

gpuTest(
  "top-k of a row with fewer unmasked items than k ends with masked ids in order",
  async (e) => {
    const cols = 20;
    const data = Float32Array.from({ length: cols }, (_, i) => (i % 3) - 1);
    const scores = e.tensor(data, [1, cols]);
    // Everything but items 4, 9 and 13 is excluded.
    const items = Int32Array.from([...Array(cols).keys()].filter((i) => ![4, 9, 13].includes(i)));
    maskScores(scores, { offsets: Int32Array.from([0, items.length]), items });
    const top = await topK(scores, 10).read();
    // data[4] = 0, data[9] = -1, data[13] = 0: ties by id, then masked ids from 0 upwards.
    assert.deepEqual(Array.from(top), [4, 13, 9, 0, 1, 2, 3, 5, 6, 7]);
    // The target 9 ranks after the two zeros; an excluded target counts every unmasked item.
    assert.deepEqual(Array.from(await targetRanks(scores, Int32Array.from([9])).read()), [2]);
    assert.deepEqual(Array.from(await targetRanks(scores, Int32Array.from([5])).read()), [3]);
  },
);

gpuTest("equal scores everywhere: ids in order, rank 0 for every unmasked target", async (e) => {
  const rows = 3;
  const cols = 600;
  const scores = e.tensor(new Float32Array(rows * cols).fill(0.5), [rows, cols]);
  maskScores(scores);
  const top = await topK(scores, 128).read();
  const want = [...Array(128).keys()].map((i) => i + 1);
  for (let u = 0; u < rows; u++) {
    assert.deepEqual(Array.from(top.subarray(u * 128, u * 128 + 128)), want);
  }
  const ranks = await targetRanks(scores, Int32Array.from([1, 599, 0])).read();
  // Target 0 is the masked padding column: every other item beats it.
  assert.deepEqual(Array.from(ranks), [0, 0, cols - 1]);
});

smallBindingTest(
  "ranking ops on windows of a small-binding engine match one binding",
  async (e) => {
    const bind = e.gpu.limits.maxStorageBufferBindingSize;
    // Scores over several windows; rows straddle no window (each row is whole in one).
    assert.ok(37 * 1000 * 4 > 2 * bind);
    await checkAll(e, {
      rows: 37,
      cols: 1000,
      ks: [1, 10, 128],
      seed: 5,
      tied: true,
      keepSeen: false,
    });
    // k > cols: the [rows, k] output outgrows the scores' windows and is split further.
    assert.ok(300 * 100 * 4 > bind && 300 * 128 * 4 > 2 * bind);
    await checkAll(e, { rows: 300, cols: 100, ks: [7, 128], seed: 6, tied: true, keepSeen: false });
    await checkAll(e, { rows: 41, cols: 2003, ks: [3], seed: 7, tied: false, keepSeen: true });
    // Segments of each window's rows, and their candidates' windows.
    await checkSegments(
      e,
      { rows: 37, cols: 1000, ks: [1, 10, 128], seed: 33, tied: true, keepSeen: false },
      [256, 999],
    );
  },
);

gpuTest("ranking ops refuse bad shapes, targets, histories and k", (e) => {
  const scores = e.tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => topK(scores, 0), /k = 0 is not an integer in \[1, 128\]/);
  assert.throws(() => topK(scores, 129), /k = 129/);
  assert.throws(() => targetRanks(scores, Int32Array.from([0, 3])), /target 3 at row 1/);
  assert.throws(() => targetRanks(scores, Int32Array.from([0])), /1 targets for scores \[2, 3\]/);
  assert.throws(
    () => maskScores(scores, { offsets: Int32Array.from([0, 1]), items: Int32Array.from([1]) }),
    /offsets must have 3 entries/,
  );
  assert.throws(
    () => maskScores(scores, { offsets: Int32Array.from([0, 2, 1]), items: Int32Array.from([1]) }),
    /exclusion offsets decrease at row 1/,
  );
  assert.throws(
    () => maskScores(scores, { offsets: Int32Array.from([0, 1, 1]), items: Int32Array.from([3]) }),
    /excluded item 3 is outside \[0, 3\)/,
  );
  assert.throws(() => topK(e.tensor(new Float32Array(3), [3]), 1), /not \[users, items \+ 1\]/);
});

gpuTest("zero users give empty results", async (e) => {
  const scores = e.empty([0, 10], "f32");
  maskScores(scores, { offsets: new Int32Array(1), items: new Int32Array(0) });
  assert.equal((await targetRanks(scores, new Int32Array(0)).read()).length, 0);
  assert.deepEqual(topK(scores, 5).shape, [0, 5]);
});

const MILLION = 1_000_001;

gpuTest("1,000,000 items: ranks and top-k of a few users match the reference", async (e) => {
  const rows = 3;
  const cols = MILLION;
  for (const tied of [false, true]) {
    const data = tied ? tiedScores(rows * cols, 11, 2001) : spreadScores(rows * cols, 12);
    const targets = Int32Array.from([17, 999_999, 500_000]);
    const ex = histories(rows, cols, 13, targets, 200);
    const masked = refMask(data, rows, cols, ex);
    await e.tidyAsync(async () => {
      const scores = e.tensor(data, [rows, cols], "f32", "scores");
      maskScores(scores, ex);
      const ranks = await targetRanks(scores, targets).read();
      for (let u = 0; u < rows; u++) {
        const row = masked.subarray(u * cols, (u + 1) * cols);
        assert.equal(ranks[u], refRank(row, targets[u]), `rank of row ${u}`);
      }
      for (const k of [1, 100]) {
        const top = await topK(scores, k).read();
        for (let u = 0; u < rows; u++) {
          assert.deepEqual(
            Array.from(top.subarray(u * k, (u + 1) * k)),
            refTopK(masked.subarray(u * cols, (u + 1) * cols), k),
            `top ${k} of row ${u}`,
          );
        }
      }
    });
  }
});

gpuTest("a 160 MB score matrix (over one binding) is ranked window by window", async (e) => {
  const rows = 40;
  const cols = MILLION;
  assert.ok(rows * cols * 4 > e.gpu.limits.maxStorageBufferBindingSize, "needs several windows");
  const data = tiedScores(rows * cols, 21, 4001);
  const targets = randomInts(rows, 22, 0, cols);
  const ex = histories(rows, cols, 23, targets, 50);
  const masked = refMask(data, rows, cols, ex);
  await e.tidyAsync(async () => {
    const scores = e.tensor(data, [rows, cols], "f32", "scores");
    maskScores(scores, ex);
    const ranks = await targetRanks(scores, targets).read();
    const want = Array.from(
      targets,
      (t, u) => refRank(masked.subarray(u * cols, (u + 1) * cols), t),
    );
    assert.deepEqual(Array.from(ranks), want, "target ranks of every row");
    const k = 20;
    const top = await topK(scores, k).read();
    // Rows at both ends of each window (32 rows of 4,000,004 bytes fit 128 MiB).
    for (const u of [0, 1, 31, 32, 33, 39]) {
      assert.deepEqual(
        Array.from(top.subarray(u * k, (u + 1) * k)),
        refTopK(masked.subarray(u * cols, (u + 1) * cols), k),
        `top ${k} of row ${u}`,
      );
    }
  });
});

// topK walks a segment ~6 · cols / 256 times an invocation, targetRanks cols / 256: llvmpipe cut
// [1, 2.9M]'s top 1 short (id 0, want 1,879,993), so a software adapter used to refuse rows past
// the budget. It now ranks them in segments of the widest width within the budget.
Deno.test("the ranking kernels' segments are the widest within the loop budget", () => {
  assert.equal(TOP_K_SEGMENT, 1_351_680);
  assert.ok(topKLoops(TOP_K_SEGMENT) <= LOOP_BUDGET);
  assert.ok(topKLoops(TOP_K_SEGMENT + 1) > LOOP_BUDGET);
  assert.equal(TARGET_RANK_SEGMENT, 8_386_560);
  assert.ok(targetRankLoops(TARGET_RANK_SEGMENT) <= LOOP_BUDGET);
  assert.ok(targetRankLoops(TARGET_RANK_SEGMENT + 1) > LOOP_BUDGET);
});

/** Top k and ranks of narrow segments (several merge rounds) against the references. */
async function checkSegments(e: Engine, c: Case, widths: number[]): Promise<void> {
  const { rows, cols } = c;
  const data = c.tied ? tiedScores(rows * cols, c.seed) : spreadScores(rows * cols, c.seed);
  const targets = randomInts(rows, c.seed + 1, 0, cols);
  await e.tidyAsync(async () => {
    const scores = e.tensor(data, [rows, cols], "f32", "scores");
    const want = Array.from(targets, (t, u) => refRank(data.subarray(u * cols, (u + 1) * cols), t));
    for (const width of [1, 7, ...widths]) {
      const ranks = await targetRanksInSegments(scores, targets, width).read();
      assert.deepEqual(Array.from(ranks), want, `target ranks in segments of ${width}`);
    }
    for (const width of widths) {
      for (const k of c.ks.filter((k) => 2 * k <= width)) {
        const top = await topKInSegments(scores, k, width).read();
        for (let u = 0; u < rows; u++) {
          assert.deepEqual(
            Array.from(top.subarray(u * k, (u + 1) * k)),
            refTopK(data.subarray(u * cols, (u + 1) * cols), k),
            `top ${k} of row ${u} (${rows}×${cols}) in segments of ${width}`,
          );
        }
      }
    }
  });
}

gpuTest("top-k and ranks in narrow segments match one pass over the row", async (e) => {
  // 4099 columns in segments of 256 (17, the last of 3 items, fewer than k): 17 · 128 candidates
  // are merged in segments again. Few score levels: ties everywhere, across every boundary.
  await checkSegments(e, {
    rows: 3,
    cols: 4099,
    ks: [1, 5, 128],
    seed: 31,
    tied: true,
    keepSeen: false,
  }, [
    256,
    300,
    1000,
    4098,
  ]);
  await checkSegments(e, {
    rows: 2,
    cols: 2051,
    ks: [1, 10, 100],
    seed: 32,
    tied: false,
    keepSeen: false,
  }, [
    256,
    1025,
  ]);
  // Equal scores everywhere: the top k are the lowest ids, whichever segments hold them.
  const scores = e.tensor(new Float32Array(1000).fill(0.5), [1, 1000]);
  assert.deepEqual(Array.from(await topKInSegments(scores, 128, 256).read()), [
    ...Array(128).keys(),
  ]);
  assert.throws(
    () => topKInSegments(scores, 128, 255),
    /segment width 255 is not an integer ≥ 256/,
  );
  assert.throws(() => targetRanksInSegments(scores, new Int32Array(1), 0), /segment width 0/);
});

// Before segments, a software adapter refused these rows (topK past 1,351,680 items, targetRanks
// past 8,386,560); llvmpipe had returned id 0 as the top 1 of [1, 2.9M] before that.
gpuTest("top-k of rows just past one segment, ties across the segment boundaries", async (e) => {
  // Three segments on a software adapter. One pass over the row loops ~69,000 times: llvmpipe
  // cuts it short (the top 1 of row 0 came back as id 0).
  const cols = 2_900_001;
  const rows = 2;
  const data = new Float32Array(rows * cols);
  data.set(spreadScores(cols, 41));
  // Row 0: equal top scores in every segment, the next level on both sides of each boundary.
  for (const id of [5, TOP_K_SEGMENT - 1, TOP_K_SEGMENT, 2 * TOP_K_SEGMENT, cols - 1]) {
    data[id] = 50;
  }
  for (const id of [0, TOP_K_SEGMENT - 2, TOP_K_SEGMENT + 1, 2 * TOP_K_SEGMENT - 1]) data[id] = 40;
  // Row 1: -1 up to 100 items before the first boundary, then zeros (some -0) to the end: the
  // top 128 are tied and straddle the boundary (100 from the first segment, 28 from the second).
  const row1 = data.subarray(cols);
  row1.fill(-1, 0, TOP_K_SEGMENT - 100);
  for (let i = TOP_K_SEGMENT - 100; i < cols; i += 3) row1[i] = -0;
  const scores = e.tensor(data, [rows, cols], "f32", "scores");
  for (const k of [1, 7, 128]) {
    const top = await topK(scores, k).read();
    for (let u = 0; u < rows; u++) {
      assert.deepEqual(
        Array.from(top.subarray(u * k, (u + 1) * k)),
        refTopK(data.subarray(u * cols, (u + 1) * cols), k),
        `top ${k} of row ${u}`,
      );
    }
  }
  const top = await topK(scores, 9).read();
  assert.deepEqual(Array.from(top.subarray(0, 9)), [
    5,
    TOP_K_SEGMENT - 1,
    TOP_K_SEGMENT,
    2 * TOP_K_SEGMENT,
    cols - 1,
    0,
    TOP_K_SEGMENT - 2,
    TOP_K_SEGMENT + 1,
    2 * TOP_K_SEGMENT - 1,
  ]);
  const targets = Int32Array.from([TOP_K_SEGMENT, 3]);
  const ranks = await targetRanks(scores, targets).read();
  assert.deepEqual(
    Array.from(ranks),
    Array.from(targets, (t, u) => refRank(data.subarray(u * cols, (u + 1) * cols), t)),
  );
  scores.dispose();
});

gpuTest("targetRanks of a row just past one segment counts every segment", async (e) => {
  const cols = TARGET_RANK_SEGMENT + 1;
  const data = spreadScores(cols, 43);
  data[cols - 1] = 30; // the only item above the target, in the second segment
  data[TARGET_RANK_SEGMENT - 1] = 20;
  const scores = e.tensor(data, [1, cols], "f32", "scores");
  const ranks = await targetRanks(scores, Int32Array.from([TARGET_RANK_SEGMENT - 1])).read();
  assert.deepEqual(Array.from(ranks), [1]);
  const low = await targetRanks(scores, Int32Array.from([7])).read();
  assert.deepEqual(Array.from(low), [refRank(data, 7)]);
  scores.dispose();
});

gpuTest("topK of a row at the loop budget finds the top item", async (e) => {
  const cols = 1_351_680;
  const data = spreadScores(cols, 5);
  data[1_234_567] = 100;
  data[cols - 1] = 99;
  const ids = await topK(e.tensor(data, [1, cols]), 2).read();
  assert.deepEqual([...ids], [1_234_567, cols - 1]);
});

// mask_scores.wgsl walked a row's excluded items 64 at a time: past 4,194,240 of them llvmpipe
// left the rest unmasked. A software adapter's workgroups take at most 64 · LOOP_BUDGET each.
gpuTest("maskScores masks every one of 4.3M excluded items in a row", async (e) => {
  const gpu = e.gpu as { isSoftware: boolean };
  if (gpu.isSoftware) {
    assert.equal(maskSpan(e, 4_300_000), 64 * LOOP_BUDGET);
    assert.equal(maskSpan(e, 0), 1);
  }
  const cols = 1200;
  const n = 4_300_000;
  // Ids 1..500 over and over, then ids 501..1000 only at the end of the list.
  const items = new Int32Array(n);
  for (let i = 0; i < n; i++) items[i] = i < 4_200_000 ? 1 + (i % 500) : 501 + (i % 500);
  const scores = e.tensor(new Float32Array(cols).fill(1), [1, cols]);
  maskScores(scores, { offsets: new Int32Array([0, n]), items });
  const got = await scores.readF32();
  for (let c = 0; c < cols; c++) {
    assert.equal(got[c], c <= 1000 ? -Infinity : 1, `column ${c}`);
  }
});
