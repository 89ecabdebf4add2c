import assert from "node:assert/strict";
import { runKindOf } from "../../src/train/run_kind.ts";
import { openBackbone } from "../../tasks/prune_backbones.ts";
import { gpuTest } from "../support/check.ts";

Deno.test("a run's kind is its recorded task; a recommender run from before tasks is SASRec", () => {
  assert.equal(runKindOf({ task: "lm", dim: 64 }), "lm");
  assert.equal(runKindOf({ task: "ssl" }), "ssl");
  assert.equal(runKindOf({ task: "sasrec" }), "sasrec");
  assert.equal(runKindOf({ catalog: "beauty", blocks: 2 }), "sasrec");
  assert.throws(
    () => runKindOf({ task: "gpt" }),
    /a run of task "gpt": expected one of sasrec, lm/,
  );
});

gpuTest("prune refuses an event-sequence run, naming its kind", async (e) => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/runs/r1`, { recursive: true });
    await Deno.writeTextFile(`${dir}/runs/r1/config.json`, JSON.stringify({ task: "ssl" }));
    const o = {
      out: `${dir}/runs`,
      checkpoint: "best" as const,
      evalTokens: 0,
      calibTokens: 64,
      sequences: 1,
      sequenceLength: 8,
      seed: 0,
      evalUsers: 0,
    };
    await assert.rejects(
      openBackbone(e, "r1", o),
      /--model r1 is a run of task ssl; prune takes a language-model or SASRec run/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
