/** The read model: lazy read-only opening, older stores, lost runs, notes, archive, delete. */
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

Deno.test("lost is derived from the heartbeat and never for runs that ended", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cutrec-read-" });
  const store = await RunStore.open(dir);
  await store.createRun({ id: "r", name: "r", dataset: "d", config: {} });
  const reader = StoreReader.open(dir);
  assert.equal((await reader.getRun("r"))!.status, "running");
  await store.heartbeat("r", new Date(Date.now() - (LOST_AFTER_SECONDS + 1) * 1000));
  assert.equal((await reader.getRun("r"))!.status, "lost");
  await store.update("r", { status: "failed", error: "x", finished: true });
  assert.equal((await reader.getRun("r"))!.status, "failed");
  await store.reopenRun("r");
  assert.equal((await reader.getRun("r"))!.status, "running");
  await reader.close();
  await store.close();
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("tags, notes and the archive mark; deleting a run removes its records", async () => {
  const dir = await tempDir();
  const store = await RunStore.open(dir);
  for (const id of ["a", "b"]) await store.createRun({ id, name: id, dataset: "d", config: {} });
  await store.addMetrics("a", [{ epoch: 1, step: 1, key: "train_loss", value: 1 }]);
  const reader = StoreReader.open(dir);
  await store.annotate("a", { tags: ["baseline", "beauty"], note: "first try" });
  await store.setArchived("a", true);
  // Notes again keep the archive mark; archiving keeps the notes.
  await store.annotate("a", { tags: ["baseline"], note: "first try, kept" });
  const notes = await reader.notes("a");
  assert.deepEqual(notes.tags, ["baseline"]);
  assert.equal(notes.note, "first try, kept");
  assert.ok(notes.archivedAt);
  await store.setArchived("a", false);
  assert.equal((await reader.notes("a")).archivedAt, null);
  await store.setArchived("b", true);
  assert.deepEqual([...(await reader.allNotes()).keys()].sort(), ["a", "b"]);

  assert.equal(await store.deleteRun("a"), true);
  assert.equal(await reader.getRun("a"), null);
  assert.deepEqual(await reader.metricRows("a"), []);
  assert.equal((await reader.notes("a")).note, "");
  assert.equal(await store.deleteRun("a"), false);
  assert.deepEqual((await reader.listRuns()).map((r) => r.id), ["b"]);
  await reader.close();
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
