/** The read model on SQLite: lazy read-only opening, older stores, a sweep read two ways (the rest is contract_test.ts). */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { StoreReader } from "../../src/store/read.ts";
import { LOST_AFTER_SECONDS, RunStore } from "../../src/store/runs.ts";
import { SweepStore } from "../../src/store/sweeps.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "cutrec-read-" });
}

Deno.test("a reader made before the store exists reads nothing, then what a writer adds", async () => {
  const dir = await tempDir();
  const reader = StoreReader.open(dir);
  assert.deepEqual(await reader.listRuns(), []);
  assert.equal(await reader.getRun("r1"), null);
  assert.deepEqual(await reader.metricRows("r1"), []);
  assert.equal(await reader.metricsCursor("r1"), 0);
  assert.deepEqual(await reader.listSweeps(), []);
  assert.equal(await reader.getSweep("s1"), null);
  assert.equal((await reader.allNotes()).size, 0);
  // Reading created nothing.
  assert.deepEqual([...Deno.readDirSync(dir)], []);

  const store = await RunStore.open(dir);
  await store.createRun({ id: "r1", name: "first", dataset: "d", config: { loss: "ce" } });
  const before = Date.now() / 1000;
  await store.addMetrics("r1", [{ epoch: 1, step: 3, key: "train_loss", value: 2 }]);
  assert.equal((await reader.getRun("r1"))!.status, "running");
  const [row] = await reader.metricRows("r1");
  assert.equal(row.value, 2);
  assert.ok(row.recordedAt! >= before - 1 && row.recordedAt! <= Date.now() / 1000 + 1);
  assert.equal(await reader.metricsCursor("r1"), row.rowid);
  // No sweep tables yet: still empty, not an error.
  assert.deepEqual(await reader.listSweeps(), []);
  await reader.close();
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a store from before heartbeats and row times reads back; reading writes nothing", async () => {
  const dir = await tempDir();
  const db = new DatabaseSync(`${dir}/runs.sqlite`);
  db.exec(`
    create table runs (id text primary key, name text not null, status text not null,
      dataset text not null, config text not null, created_at text not null, finished_at text,
      wall_seconds real, peak_bytes integer, best_valid_ndcg10 real, error text,
      checkpoint text, sweep_id text);
    create table metrics (run_id text not null, epoch integer not null, step integer not null,
      key text not null, value real not null);
  `);
  const old = new Date(Date.now() - (LOST_AFTER_SECONDS + 5) * 1000).toISOString();
  const fresh = new Date().toISOString();
  const insert = db.prepare(
    "insert into runs (id, name, status, dataset, config, created_at) values (?, ?, ?, ?, ?, ?)",
  );
  insert.run("old", "killed", "running", "d", "{}", old);
  insert.run("new", "training", "running", "d", "not json", fresh);
  db.prepare("insert into metrics values ('old', 1, 4, 'peak_bytes', 7)").run();
  db.close();
  const schema = () => {
    const c = new DatabaseSync(`${dir}/runs.sqlite`, { readOnly: true });
    const text = c.prepare("select group_concat(sql, ';') as s from sqlite_master").get()!.s;
    c.close();
    return text;
  };
  const before = schema();

  const reader = StoreReader.open(dir);
  const killed = (await reader.getRun("old"))!;
  // Without a heartbeat column, a run counts from its creation: long ago, so lost.
  assert.equal(killed.status, "lost");
  assert.equal(killed.heartbeatAt, null);
  assert.equal((await reader.getRun("new"))!.status, "running");
  // A damaged config reads as empty rather than failing the whole list.
  assert.deepEqual((await reader.getRun("new"))!.config, {});
  assert.equal(await reader.recordedPeak("old"), 7);
  assert.equal((await reader.metricRows("old"))[0].recordedAt, null);
  assert.deepEqual(await reader.notes("old"), { tags: [], note: "", archivedAt: null });
  await reader.close();
  assert.equal(schema(), before, "the read-only reader altered the schema");

  // A writer opening it afterwards adds what is missing.
  const store = await RunStore.open(dir);
  assert.equal((await store.getRun("old"))!.status, "lost");
  await store.heartbeat("old");
  assert.equal((await store.getRun("old"))!.status, "running");
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writers read through the same model: a sweep's trials joined with their runs", async () => {
  const dir = await tempDir();
  const sweeps = await SweepStore.open(dir);
  await sweeps.createOrGetSweep({
    id: "s",
    name: null,
    defaultName: "grid",
    args: {},
    grid: { negatives: [1, 2] },
    budgetBytes: null,
  });
  await sweeps.ensureTrials("s", [{ key: "negatives=1", params: { negatives: 1 } }]);
  // A status written by a newer version is not counted under a made-up key.
  await sweeps.db.run(
    "insert into trials (sweep_id, key, params, status) values (?, ?, ?, ?)",
    ["s", "negatives=2", '{"negatives":2}', "toString"],
  );
  const reader = StoreReader.open(dir);
  assert.deepEqual(await reader.listSweeps(), await sweeps.listSweeps());
  assert.deepEqual((await reader.listSweeps())[0].counts, {
    pending: 1,
    running: 0,
    finished: 0,
    failed: 0,
    exceeds_budget: 0,
    pruned: 0,
  });
  assert.deepEqual(await reader.getSweep("s"), await sweeps.getSweep("s"));
  await reader.close();
  await sweeps.close();
  await Deno.remove(dir, { recursive: true });
});
