import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { readEmbeddings } from "../../src/store/embeddings.ts";
import { ConfigError } from "../../src/train/flags.ts";
import { Logger } from "../../src/train/log.ts";
import { evaluateEmbeddings, loadSslRun, prepareEvents, trainSsl } from "../../src/train/ssl.ts";
import { parseSslArgs, SSL_DEFAULTS, type SslConfig } from "../../src/train/ssl_config.ts";
import { EVENT_OBJECTIVE_NAMES, eventObjectiveOf } from "../../src/loss/event_objectives.ts";
import { gpuTest } from "../support/check.ts";

const quiet = new Logger({ json: true, write: () => {}, progress: false });

function tiny(out: string, over: Partial<SslConfig>): SslConfig {
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
    batchClients: 16,
    epochs: 1,
    out,
    ...over,
  };
}

gpuTest(
  "CoLES, then MLEM on its frozen encoder: finished runs, probes and embedding files",
  async (e) => {
    const out = await Deno.makeTempDir();
    try {
      const coles = tiny(out, { method: "coles", encoder: "transformer", hidden: 8, heads: 2 });
      const c = await trainSsl(e, coles, await prepareEvents(coles), { logger: quiet });
      assert.equal(c.status, "finished", c.error ?? "");
      assert.ok(Number.isFinite(c.groups.test.cv_accuracy));
      assert.ok(Number.isFinite(c.groups.random.probe_accuracy));
      const colesGru = tiny(out, { method: "coles" });
      const g = await trainSsl(e, colesGru, await prepareEvents(colesGru), { logger: quiet });
      const mlem = tiny(out, { method: "mlem", teacher: g.runId });
      const m = await trainSsl(e, mlem, await prepareEvents(mlem), { logger: quiet });
      assert.equal(m.status, "finished", m.error ?? "");
      const emb = readEmbeddings(m.runDir, "clients");
      assert.ok(emb, "no client embeddings written");
      assert.equal(emb.count, 40);
      assert.equal(emb.dim, 8);
      assert.equal(emb.colour?.values.length, 40);
      // ssl:eval's path: the best checkpoint reloaded gives the figures training ended with.
      const { model, run } = await loadSslRun(e, out, m.runId);
      try {
        const again = await evaluateEmbeddings(model, await prepareEvents(run), run);
        assert.deepEqual(again.groups, m.groups);
      } finally {
        model.dispose();
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
);

Deno.test("the objective registry names its objectives; flags are checked", () => {
  assert.deepEqual(EVENT_OBJECTIVE_NAMES, ["coles", "generative", "mlem"]);
  assert.ok(eventObjectiveOf("coles").slices);
  assert.ok(eventObjectiveOf("mlem").teacher);
  assert.throws(() => eventObjectiveOf("bert"), /unknown event objective "bert"/);
  assert.throws(() => parseSslArgs(["--method", "mlem"]), ConfigError);
  assert.throws(() => parseSslArgs(["--min-len", "50", "--max-len", "10"]), /--min-len 50/);
  assert.throws(() => parseSslArgs(["--hidden", "512"]), /at most 256 units/);
});

Deno.test("ssl:train refuses bad numbers before anything runs, naming the flag as typed", () => {
  const refusals: [string[], RegExp][] = [
    [["--batch-clients", "0"], /--batch-clients must be a whole number ≥ 1, got 0/],
    [["--category-dim", "2.5"], /--category-dim must be a whole number ≥ 1, got 2.5/],
    [["--clients", "-5"], /--clients must be a whole number ≥ 1, got -5/],
    [["--clients", "200000"], /--clients must be ≤ 100000, got 200000/],
    [["--hard-negatives", "0"], /--hard-negatives must be a whole number ≥ 1, got 0/],
    [["--hard-negatives", "17"], /--hard-negatives must be ≤ 16 .*got 17/],
    [["--seed", "1.5"], /--seed must be a whole number ≥ 0, got 1.5/],
    [["--temperature", "0"], /--temperature must be > 0, got 0/],
    [["--margin", "-1"], /--margin must be ≥ 0, got -1/],
    [["--clip", "-1"], /--clip must be ≥ 0, got -1/],
    [["--align-weight", "-2"], /--align-weight must be ≥ 0, got -2/],
  ];
  for (const [args, message] of refusals) {
    assert.throws(() => parseSslArgs(args), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${args.join(" ")}: ${e}`);
      assert.match(e.message, message);
      return true;
    });
  }
});
