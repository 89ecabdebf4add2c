import assert from "node:assert/strict";
import {
  ConfigError,
  flagsHelp,
  type FlagSpec,
  requireWholeNumbers,
} from "../../src/train/flags.ts";
import { lmTrainHelp } from "../../src/train/lm_config.ts";
import { finetuneHelp } from "../../src/train/finetune_config.ts";
import { sslHelp } from "../../src/train/ssl_config.ts";
import { trainHelp } from "../../src/train/config.ts";

interface Example {
  batchSize: number;
  store: string | null;
  mode: string;
}
const FLAGS: Record<string, FlagSpec<keyof Example>> = {
  "batch-size": { key: "batchSize", type: "number", help: "rows a batch" },
  store: { key: "store", type: "string", help: "run store", shown: "<out>/runs.sqlite" },
  mode: { key: "mode", type: "string", help: "how", choices: ["a", "b"] },
};
const DEFAULTS: Example = { batchSize: 8, store: null, mode: "a" };

Deno.test("flagsHelp: one aligned line a flag with choices and default, then --help", () => {
  assert.deepEqual(flagsHelp(FLAGS, DEFAULTS), [
    "Flags:",
    "  --batch-size  rows a batch [default: 8]",
    "  --store       run store [default: <out>/runs.sqlite]",
    "  --mode        how (a|b) [default: a]",
    "  --help        print this help",
  ]);
});

Deno.test("every training task's --help shows a default's stated form and --help", () => {
  for (const help of [trainHelp(), lmTrainHelp(), finetuneHelp(), sslHelp()]) {
    assert.match(help, /--store +run store .*\[default: <out>\/runs\.sqlite\]/);
    assert.match(help, /--help +print this help/);
  }
});

Deno.test("requireWholeNumbers names the flag, the bound and the value", () => {
  requireWholeNumbers(FLAGS, DEFAULTS, ["batchSize"], 1);
  for (const bad of [0, -1, 2.5, NaN]) {
    assert.throws(
      () => requireWholeNumbers(FLAGS, { ...DEFAULTS, batchSize: bad }, ["batchSize"], 1),
      (e: Error) =>
        e instanceof ConfigError &&
        e.message === `--batch-size must be a whole number ≥ 1, got ${bad}`,
    );
  }
  requireWholeNumbers(FLAGS, { ...DEFAULTS, batchSize: 0 }, ["batchSize"], 0);
});
