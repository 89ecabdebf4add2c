/**
 * What only the SQLite store has: its file's journal mode and the columns an older version's file
 * lacks. What every store does, on SQLite and PostgreSQL alike, is tests/store/contract_test.ts.
 */
import assert from "node:assert/strict";
import { SweepStore } from "../../src/store/sweeps.ts";

Deno.test("a store written before workers existed gains the worker and attempt columns", async () => {
  const dir = await Deno.makeTempDir();
  const { DatabaseSync } = await import("node:sqlite");
  const old = new DatabaseSync(`${dir}/runs.sqlite`);
  old.exec(`create table trials (sweep_id text not null, key text not null, params text not null,
    status text not null, run_id text, estimate_bytes integer, peak_bytes integer, error text,
    started_at text, finished_at text, primary key (sweep_id, key));
    insert into trials (sweep_id, key, params, status) values ('s0', 'k', '{}', 'finished');`);
  old.close();
  const store = await SweepStore.open(dir);
  const [t] = await store.listTrials("s0");
  assert.deepEqual([t.key, t.status, t.worker, t.attempt], ["k", "finished", null, 0]);
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the SQLite store's file is in WAL mode, so writers and the dashboard overlap", async () => {
  const dir = await Deno.makeTempDir();
  const store = await SweepStore.open(dir);
  const mode = await store.db.get("pragma journal_mode");
  assert.equal(mode?.journal_mode, "wal");
  await store.close();
  await Deno.remove(dir, { recursive: true });
});
