import assert from "node:assert/strict";
import {
  describeStoredObjective,
  isFullSoftmax,
  OBJECTIVE_NAMES,
  objectiveLabel,
  objectiveOf,
  type ObjectiveSettings,
} from "../../src/loss/objectives.ts";

const settings: ObjectiveSettings = {
  negatives: 256,
  sampler: "shared",
  logQ: false,
  gbceT: 0.75,
  filterEps: 0,
};

Deno.test("the registry answers 'full softmax?' once for every objective", () => {
  assert.deepEqual(OBJECTIVE_NAMES, ["cce-", "cce", "ce", "ce-", "bce", "gbce"]);
  const full = OBJECTIVE_NAMES.filter((n) => isFullSoftmax(n, settings));
  assert.deepEqual(full, ["cce", "ce"]);
  assert.equal(objectiveLabel("cce", settings), "full softmax");
  assert.equal(objectiveLabel("ce-", settings), "256 shared");
  assert.equal(objectiveLabel("bce", { ...settings, sampler: "uniform" }), "1 uniform");
  assert.throws(() => objectiveOf("mse"), /unknown objective "mse": one of cce-, cce, ce/);
});

Deno.test("stored configurations of any version read through the registry", () => {
  assert.deepEqual(describeStoredObjective({ loss: "cce", negatives: 256 }), {
    name: "cce",
    negatives: null,
    label: "full softmax",
  });
  assert.deepEqual(describeStoredObjective({ loss: "gbce", negatives: 64, sampler: "uniform" }), {
    name: "gbce",
    negatives: 64,
    label: "64 uniform",
  });
  assert.equal(describeStoredObjective({ loss: "nope" }), null);
  assert.equal(describeStoredObjective({}), null);
});

Deno.test("memory terms grow with what each objective materialises", () => {
  const shape = (negatives: number) => ({
    positions: 1000,
    items: 10_000,
    dim: 64,
    settings: { ...settings, sampler: "uniform" as const, negatives },
  });
  const bytes = (name: string, k = 256) => objectiveOf(name).memoryBytes(shape(k));
  assert.ok(bytes("ce") > bytes("cce"), "full logits against O(N) state");
  assert.ok(bytes("ce-") > bytes("cce-"), "N·K logits and rows against O(N) state");
  assert.ok(bytes("ce-", 1024) > bytes("ce-", 256));
  // Fused per-position: no logits, but the table gradient's entries: a coefficient and an index
  // in bucket order, 8 bytes per (n, slot), and at d = 64 about 2 more for the fixed-point sums
  // of buckets over several pieces.
  const perEntry = (bytes("cce-", 1024) - bytes("cce-", 256)) / (1000 * 768);
  assert.ok(perEntry > 0 && perEntry <= 10.1, `cce- bytes per extra entry: ${perEntry}`);
});
