/** Where a store is: the --store URL checks, placeholders, and an unreachable server refused. */
import assert from "node:assert/strict";
import { checkStoreUrl, isPostgresUrl, storeLabel } from "../../src/store/open.ts";
import { numberPlaceholders, PostgresSql, redactUrl } from "../../src/store/postgres.ts";
import { ConfigError, parseTrainArgs } from "../../src/train/config.ts";
import { parseSweepArgs, SweepArgsError } from "../../src/sweep/grid.ts";
import { freePort } from "../../bench/redis.ts";

Deno.test("--store takes postgres:// URLs only, and every command says so naming the flag", () => {
  assert.ok(isPostgresUrl("postgres://u@h:5432/db"));
  assert.ok(isPostgresUrl("postgresql://u@h/db"));
  assert.ok(!isPostgresUrl("runs/runs.sqlite"));
  assert.throws(() => checkStoreUrl("mysql://u@h/db"), /--store must be postgres:\/\/.*"mysql/);
  assert.throws(
    () => parseTrainArgs(["--store", "sqlite.db"]),
    (e) => e instanceof ConfigError && /--store must be postgres:\/\//.test(e.message),
  );
  assert.equal(parseTrainArgs(["--store", "postgres://u@h/db"]).config.store, "postgres://u@h/db");
  assert.throws(
    () => parseSweepArgs(["--lr", "1e-3,1e-2", "--store", "sqlite.db"]),
    (e) => e instanceof SweepArgsError && /--store must be postgres:\/\//.test(e.message),
  );
  assert.equal(parseSweepArgs(["--lr", "1e-3,1e-2"]).store, null);
});

Deno.test("placeholders are numbered and passwords hidden in what is shown", () => {
  assert.equal(
    numberPlaceholders("update runs set a = ?, b = ? where id = ?"),
    "update runs set a = $1, b = $2 where id = $3",
  );
  assert.equal(redactUrl("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
  assert.equal(storeLabel("runs"), "runs/runs.sqlite");
  assert.equal(storeLabel("runs", "postgres://u:pw@h/db"), "postgres://u:***@h/db");
});

Deno.test("an unreachable PostgreSQL is refused with the flag and the URL, password hidden", async () => {
  const url = `postgres://u:secret@127.0.0.1:${freePort()}/db`;
  await assert.rejects(PostgresSql.connect(url), (e: Error) => {
    assert.match(e.message, /^--store postgres:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/db: cannot connect/);
    assert.doesNotMatch(e.message, /secret/);
    return true;
  });
});
