import assert from "node:assert/strict";
import { VariantChoice } from "../../src/tensor/variants.ts";
import type { Engine } from "../../src/tensor/engine.ts";

const VARIANTS = [{ name: "small" }, { name: "wide" }, { name: "tall" }];
const engineOn = (isSoftware: boolean) => ({ gpu: { isSoftware } }) as unknown as Engine;

Deno.test("a variant choice defaults by adapter kind, keeps a chosen one per engine", () => {
  const choice = new VariantChoice("demo", VARIANTS, { software: "small", gpu: "wide" });
  const cpu = engineOn(true);
  const gpu = engineOn(false);
  assert.equal(choice.of(cpu).name, "small");
  assert.equal(choice.of(gpu).name, "wide");
  assert.equal(choice.use(cpu, "tall").name, "tall");
  assert.equal(choice.of(cpu).name, "tall");
  assert.equal(choice.of(gpu).name, "wide", "another engine keeps its default");
  assert.equal(choice.defaultFor(cpu).name, "small");
});

Deno.test("an unknown variant is refused with the names there are", () => {
  const choice = new VariantChoice("demo", VARIANTS, { software: "small", gpu: "wide" });
  assert.throws(
    () => choice.named("huge"),
    /unknown demo variant "huge": one of small, wide, tall/,
  );
  assert.throws(
    () => new VariantChoice("demo", VARIANTS, { software: "small", gpu: "huge" }),
    /unknown demo variant "huge"/,
  );
});
