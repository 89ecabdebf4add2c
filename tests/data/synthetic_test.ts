import assert from "node:assert/strict";
import { DataError, interactionCount, itemCounts } from "../../src/data/dataset.ts";
import { readSequences } from "../../src/data/readers.ts";
import { leaveOneOut } from "../../src/data/split.ts";
import {
  parseCatalog,
  syntheticDataset,
  syntheticShape,
  writeSyntheticSequences,
} from "../../src/data/synthetic.ts";

Deno.test("same seed → identical data; another seed → different data", () => {
  const a = syntheticDataset({ catalog: "small", seed: 42, users: 300 });
  const b = syntheticDataset({ catalog: "small", seed: 42, users: 300 });
  const c = syntheticDataset({ catalog: "small", seed: 43, users: 300 });
  assert.deepEqual(a.sequences, b.sequences);
  assert.deepEqual(a.timestamps, b.timestamps);
  assert.notDeepEqual(a.sequences, c.sequences);
  // A user does not depend on how many users are generated.
  const more = syntheticDataset({ catalog: "small", seed: 42, users: 400 });
  assert.deepEqual(more.sequences.slice(0, 300), a.sequences);
});

Deno.test("presets and shape: ids in range, lengths ≥ 5, times ascending", () => {
  const ds = syntheticDataset({ catalog: "small", seed: 0 });
  assert.equal(ds.items, 2000);
  assert.equal(ds.users, 3000);
  const mean = interactionCount(ds) / ds.users;
  assert.ok(mean > 27 && mean < 33, `mean length ${mean}`);
  ds.sequences.forEach((s, u) => {
    assert.ok(s.length >= 5);
    for (const id of s) assert.ok(id >= 1 && id <= ds.items);
    const t = ds.timestamps![u];
    for (let i = 1; i < t.length; i++) assert.ok(t[i] >= t[i - 1]);
  });
  assert.deepEqual(syntheticShape({ catalog: "medium", seed: 0 }).items, 20_000);
  assert.deepEqual(syntheticShape({ catalog: 12345, seed: 0 }), {
    items: 12345,
    users: 12345,
    meanLength: 25,
    clusterSize: 50,
  });
});

Deno.test("popularity is skewed (Zipf-like)", () => {
  const ds = syntheticDataset({ catalog: "small", seed: 1 });
  const counts = Array.from(itemCounts(ds.sequences, ds.items).subarray(1)).sort((a, b) => b - a);
  const total = interactionCount(ds);
  const share = (k: number) => counts.slice(0, k).reduce((a, b) => a + b, 0) / total;
  // The top 10% of items take far more than 10% of interactions; the top 1% far more than 1%.
  assert.ok(share(200) > 0.4, `top 10% share ${share(200)}`);
  assert.ok(share(20) > 0.1, `top 1% share ${share(20)}`);
  assert.ok(counts[0] > 20 * counts[1000], "head vs median item");
});

Deno.test("sequential signal: the previous item predicts the next far better than MostPop", () => {
  const ds = syntheticDataset({ catalog: "small", seed: 2 });
  const fit = ds.sequences.slice(0, 2400);
  const heldOut = ds.sequences.slice(2400);
  const successors = new Map<number, Map<number, number>>();
  for (const s of fit) {
    for (let i = 1; i < s.length; i++) {
      const m = successors.get(s[i - 1]) ?? new Map<number, number>();
      m.set(s[i], (m.get(s[i]) ?? 0) + 1);
      successors.set(s[i - 1], m);
    }
  }
  const popularity = itemCounts(fit, ds.items);
  const top10Pop = new Set(
    Array.from(popularity.keys()).sort((a, b) => popularity[b] - popularity[a]).slice(0, 10),
  );
  let hitsSeq = 0;
  let hitsPop = 0;
  let n = 0;
  for (const s of heldOut) {
    const prev = s[s.length - 2];
    const next = s[s.length - 1];
    const ranked = [...(successors.get(prev) ?? new Map()).entries()].sort((a, b) => b[1] - a[1]);
    if (ranked.slice(0, 10).some(([item]) => item === next)) hitsSeq++;
    if (top10Pop.has(next)) hitsPop++;
    n++;
  }
  const hrSeq = hitsSeq / n;
  const hrPop = hitsPop / n;
  assert.ok(hrSeq > 0.35, `successor HR@10 ${hrSeq}`);
  assert.ok(hrSeq > 4 * hrPop, `successor HR@10 ${hrSeq} vs MostPop ${hrPop}`);
});

Deno.test("large catalogue: 1,000,000 items generated quickly", () => {
  const t0 = performance.now();
  const ds = syntheticDataset({ catalog: "large", seed: 0 });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(ds.items, 1_000_000);
  assert.equal(ds.users, 100_000);
  const n = interactionCount(ds);
  assert.ok(n > 1.9e6 && n < 2.1e6, `${n} events`);
  assert.ok(seconds < 60, `${seconds} s`);
  let max = 0;
  for (const s of ds.sequences) for (const id of s) max = Math.max(max, id);
  assert.ok(max <= 1_000_000 && max > 900_000);
  // Leave-one-out works on it directly (every user has ≥ 5 events).
  assert.equal(leaveOneOut(ds).test.length, 100_000);
});

Deno.test("streamed sequence file reads back to the same sequences", async () => {
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  const opts = { catalog: 500, seed: 9, users: 200 };
  await writeSyntheticSequences(path, opts);
  const direct = syntheticDataset(opts);
  const read = await readSequences(path);
  assert.equal(read.users, 200);
  read.sequences.forEach((s, u) => {
    const original = Array.from(s, (id) => Number(read.originalItemIds![id]));
    assert.deepEqual(original, Array.from(direct.sequences[u]));
  });
  await Deno.remove(path);
});

Deno.test("--catalog parsing", () => {
  assert.equal(parseCatalog("small"), "small");
  assert.equal(parseCatalog("large"), "large");
  assert.equal(parseCatalog("5000"), 5000);
  assert.equal(parseCatalog("2"), 2);
  assert.equal(parseCatalog("2147483647"), 2 ** 31 - 1);
  const allowed = "--catalog must be small, medium, large or an item count from 2 to 2147483647";
  for (const bad of ["huge", "1", "0", "-5", "2147483648", "2.5", ""]) {
    assert.throws(() => parseCatalog(bad), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.message, `${allowed}, got ${JSON.stringify(bad)}`);
      return true;
    });
  }
  assert.throws(() => parseCatalog("9".repeat(10_000)), /got "9{40}…" \(10000 characters\)$/);
});

Deno.test("a numeric catalogue under 2 items is refused by the generator too", async () => {
  for (const catalog of [1, 0, 2.5]) {
    assert.throws(() => syntheticShape({ catalog, seed: 0 }), /catalog must be .* from 2 to/);
    assert.throws(() => syntheticDataset({ catalog, seed: 0 }), RangeError);
  }
  // Refused before the output file is opened, so an existing file is left as it was.
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  await Deno.writeTextFile(path, "1 2 3\n");
  await assert.rejects(() => writeSyntheticSequences(path, { catalog: 1, seed: 0 }), RangeError);
  assert.equal(await Deno.readTextFile(path), "1 2 3\n");
  await Deno.remove(path);
});

Deno.test("an output file that cannot be written is named", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/missing/out.txt`;
  await assert.rejects(
    () => writeSyntheticSequences(path, { catalog: 50, seed: 0, users: 3 }),
    (e: unknown) =>
      e instanceof DataError && e.message === `${path}: cannot write: no such file or directory`,
  );
  await Deno.remove(dir, { recursive: true });
});
