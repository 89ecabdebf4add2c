/** ssl:train's runs: resumed from the last checkpoint, and recorded in a PostgreSQL store. */
import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { RunStore } from "../../src/store/runs.ts";
import { Logger } from "../../src/train/log.ts";
import { readSafetensors } from "../../src/train/safetensors.ts";
import { prepareEvents, trainSsl } from "../../src/train/ssl.ts";
import {
  parseSslArgs,
  resumeSslConfig,
  SSL_DEFAULTS,
  type SslConfig,
} from "../../src/train/ssl_config.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { gpuTest } from "../support/check.ts";
import { postgresTest } from "../support/postgres_server.ts";

const quiet = () => new Logger({ json: true, write: () => {}, progress: false });

function tiny(out: string, over: Partial<SslConfig> = {}): SslConfig {
  return {
    ...SSL_DEFAULTS,
    clients: 40,
    hidden: 8,
    categoryDim: 4,
    numericDim: 4,
    slices: 2,
    minLen: 4,
    maxLen: 8,
    seqLen: 12,
    batchClients: 8,
    out,
    ...over,
  };
}

async function train(e: Engine, c: SslConfig) {
  const r = await trainSsl(e, c, await prepareEvents(c), { logger: quiet() });
  assert.equal(r.status, "finished", r.error ?? "");
  return r;
}

Deno.test("ssl:train --store takes a postgres:// URL; --resume keeps what was trained", () => {
  const url = "postgres://cutrec@127.0.0.1:5432/runs";
  assert.equal(parseSslArgs(["--store", url]).config.store, url);
  assert.throws(
    () => parseSslArgs(["--store", "runs.sqlite"]),
    /--store must be postgres:\/\/USER@HOST:PORT\/DB .*got "runs.sqlite"/,
  );
  const stored = { ...tiny("runs", { method: "generative" }), task: "ssl" };
  const more = parseSslArgs(["--resume", "R", "--epochs", "4", "--store", url]);
  const c = resumeSslConfig(stored, more.config, more.given);
  assert.equal(c.method, "generative");
  assert.equal(c.hidden, 8);
  assert.equal(c.epochs, 4);
  assert.equal(c.store, url);
  assert.equal(c.resume, "R");
  const wrong = parseSslArgs(["--resume", "R", "--hidden", "16", "--method", "coles"]);
  assert.throws(
    () => resumeSslConfig(stored, wrong.config, wrong.given),
    /--hidden 16 \(the run has 8\); --method "coles" \(the run has "generative"\)/,
  );
});

for (const method of ["coles", "generative"]) {
  gpuTest(`a resumed ${method} run ends bit for bit where an uninterrupted one does`, async (e) => {
    const dir = await Deno.makeTempDir();
    try {
      const a = await train(e, tiny(`${dir}/a`, { method, epochs: 2 }));
      const first = tiny(`${dir}/b`, { method, epochs: 1 });
      const b1 = await train(e, first);
      const { config: requested, given } = parseSslArgs([
        ...["--resume", b1.runId, "--out", `${dir}/b`, "--epochs", "2"],
      ]);
      const b2 = await train(e, resumeSslConfig({ ...first, task: "ssl" }, requested, given));
      assert.equal(b2.runId, b1.runId);
      assert.equal(b2.epochs, 2);
      const ta = (await readSafetensors(`${a.runDir}/last.safetensors`)).tensors;
      const tb = (await readSafetensors(`${b2.runDir}/last.safetensors`)).tensors;
      assert.deepEqual(Object.keys(tb).sort(), Object.keys(ta).sort());
      for (const name of Object.keys(ta)) {
        assert.deepEqual(
          new Uint32Array(tb[name].data.buffer),
          new Uint32Array(ta[name].data.buffer),
          name,
        );
      }
      assert.deepEqual(b2.valid, a.valid);
      assert.deepEqual(b2.groups, a.groups);
      const store = await RunStore.open(first.out);
      try {
        assert.equal((await store.metrics(b1.runId, "train_loss")).length, 2);
      } finally {
        await store.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

postgresTest(
  "an SSL run records into a PostgreSQL store, its URL kept without the password",
  async ({ e, dir, store }) => {
    const c = tiny(`${dir}/runs`, { store, epochs: 1 });
    const r = await train(e, c);
    const runs = await RunStore.open(c.out, store);
    try {
      const run = await runs.getRun(r.runId);
      assert.equal(run?.status, "finished");
      assert.equal(run?.config.method, "coles");
      assert.ok(!JSON.stringify(run?.config).includes("secret"), "no password in the record");
      assert.equal((await runs.metrics(r.runId, "train_loss")).length, 1);
      assert.equal((await runs.metrics(r.runId, "test_probe_accuracy")).length, 1);
    } finally {
      await runs.close();
    }
    const files = await Array.fromAsync(Deno.readDir(c.out));
    assert.ok(!files.some((f) => f.name.endsWith(".sqlite")), "no sqlite store written");
    const written = await Deno.readTextFile(`${r.runDir}/config.json`);
    assert.ok(!written.includes("secret"), "no password in config.json");
  },
);
