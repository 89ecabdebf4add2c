import assert from "node:assert/strict";
import { labelClients, readTargets, readTransactions } from "../../src/data/transactions.ts";
import { loadTransactions } from "../../src/data/transactions_cache.ts";
import { splitClients, syntheticEvents } from "../../src/data/event_synthetic.ts";

const SAMPLE = "data/ptls-age-sample/age-transactions.csv";

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/log.csv`, text);
    await fn(`${dir}/log.csv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the age sample: columns detected, 100 clients, 1,000 events in time order", async () => {
  const s = await readTransactions(SAMPLE);
  assert.equal(s.clientIds.length, 100);
  assert.equal(s.time.length, 1000);
  assert.deepEqual(s.categorical.map((c) => c.name), ["small_group"]);
  assert.deepEqual(s.numeric.map((c) => c.name), ["amount_rur"]);
  for (let c = 0; c < 100; c++) {
    for (let i = s.offsets[c] + 1; i < s.offsets[c + 1]; i++) assert.ok(s.time[i] >= s.time[i - 1]);
  }
  const { classes, labels } = labelClients(
    s,
    await readTargets("data/ptls-age-sample/age-bin.csv"),
  );
  assert.deepEqual(classes, ["0", "1", "2", "3"]);
  assert.ok(labels.every((l) => l >= 0));
});

Deno.test("a small log: ids remapped in sorted order, events sorted by time, stable", async () => {
  const text = "client,time,mcc,amount\nb,3,x,1.5\na,2,y,2\nb,1,y,3\nb,3,z,4\n";
  await withFile(text, async (path) => {
    const s = await readTransactions(path, { categorical: ["mcc"], numeric: ["amount"] });
    assert.deepEqual(s.clientIds, ["a", "b"]);
    assert.deepEqual([...s.offsets], [0, 1, 4]);
    assert.deepEqual([...s.time], [2, 1, 3, 3]);
    assert.deepEqual(s.categorical[0].vocab, ["x", "y", "z"]);
    assert.deepEqual([...s.categorical[0].values], [1, 1, 0, 2]);
    assert.deepEqual([...s.numeric[0].values], [2, 3, 1.5, 4]);
  });
});

Deno.test("bad rows name the file, the line and the field", async () => {
  await withFile("client_id,time,amount\n1,2,3.5\n1,x,2\n", async (path) => {
    await assert.rejects(() => readTransactions(path), new RegExp(`${path}:3: field "time"`));
  });
  await withFile("client_id,time,amount\n1,2,3.5\n1,2,abc,4\n", async (path) => {
    await assert.rejects(() => readTransactions(path), /:3: expected 3 fields, got 4/);
  });
  await withFile("client_id,time,amount\n1,2,3.5\n", async (path) => {
    await assert.rejects(() => readTransactions(path, { numeric: ["amt"] }), /no column "amt"/);
  });
});

Deno.test("the binary cache returns what the reader parsed, from one cache file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fresh = await readTransactions(SAMPLE);
    const first = await loadTransactions(SAMPLE, {}, dir);
    const cached = await loadTransactions(SAMPLE, {}, dir);
    for (const s of [first, cached]) {
      assert.deepEqual(s.clientIds, fresh.clientIds);
      assert.deepEqual([...s.offsets], [...fresh.offsets]);
      assert.deepEqual([...s.time], [...fresh.time]);
      assert.deepEqual([...s.categorical[0].values], [...fresh.categorical[0].values]);
      assert.deepEqual([...s.numeric[0].values], [...fresh.numeric[0].values]);
    }
    assert.equal([...Deno.readDirSync(dir)].length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synthetic events: deterministic, class mixes differ, times increase", () => {
  const a = syntheticEvents({ clients: 400, seed: 3 });
  const b = syntheticEvents({ clients: 400, seed: 3 });
  assert.deepEqual([...a.sequences.categorical[0].values], [...b.sequences.categorical[0].values]);
  const s = a.sequences;
  const counts = Array.from({ length: 4 }, () => new Float64Array(24));
  for (let c = 0; c < 400; c++) {
    for (let i = s.offsets[c]; i < s.offsets[c + 1]; i++) {
      counts[a.labels.labels[c]][s.categorical[0].values[i]]++;
      if (i > s.offsets[c]) assert.ok(s.time[i] > s.time[i - 1]);
    }
  }
  const share = counts.map((row) => row.map((v) => v / row.reduce((x, y) => x + y, 0)));
  const gap = share[0].reduce((m, v, k) => Math.max(m, Math.abs(v - share[1][k])), 0);
  assert.ok(gap > 0.03, `class 0 and 1 mixes differ by ${gap}`);
  assert.throws(() => syntheticEvents({ clients: 100_001 }), /clients 100001/);
});

Deno.test("client splits partition the clients and depend only on the seed", () => {
  const s = splitClients(103, 5);
  const all = [...s.train, ...s.valid, ...s.test].sort((x, y) => x - y);
  assert.deepEqual(all, Array.from({ length: 103 }, (_, i) => i));
  assert.equal(s.valid.length, 10);
  assert.deepEqual(splitClients(103, 5), s);
});
