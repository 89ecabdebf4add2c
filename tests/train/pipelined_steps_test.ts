import assert from "node:assert/strict";
import { PipelinedSteps } from "../../src/train/loop.ts";

/** A step whose loss is read back when `resolve` is called; logs when it is started. */
function deferredStep(log: string[], name: string, value: number) {
  let resolve!: () => void;
  const loss = new Promise<number>((r) => (resolve = () => r(value)));
  return { start: () => (log.push(`start ${name}`), loss), resolve };
}

Deno.test("each step is settled after the next one starts, in order, the last by flush", async () => {
  const log: string[] = [];
  const steps = new PipelinedSteps<string>((loss, tag) => void log.push(`settle ${tag} ${loss}`));
  const a = deferredStep(log, "a", 1);
  const b = deferredStep(log, "b", 2);
  await steps.push(a.start, "a");
  a.resolve();
  const pushing = steps.push(b.start, "b");
  assert.deepEqual(log, ["start a", "start b"], "b starts before a's loss is awaited");
  await pushing;
  b.resolve();
  await steps.flush();
  await steps.flush();
  assert.deepEqual(log, ["start a", "start b", "settle a 1", "settle b 2"]);
});

Deno.test("a step that fails to record settles the step before it, then throws", async () => {
  const log: string[] = [];
  const steps = new PipelinedSteps<string>((loss, tag) => void log.push(`settle ${tag} ${loss}`));
  await steps.push(() => Promise.resolve(1), "a");
  await assert.rejects(
    () =>
      steps.push(() => {
        throw new Error("out of memory");
      }, "b"),
    /out of memory/,
  );
  assert.deepEqual(log, ["settle a 1"]);
});

Deno.test("a failed read-back surfaces when settled; drop waits without settling", async () => {
  const log: string[] = [];
  const steps = new PipelinedSteps<string>((loss, tag) => void log.push(`settle ${tag} ${loss}`));
  await steps.push(() => Promise.reject(new Error("device lost")), "a");
  await assert.rejects(() => steps.push(() => Promise.resolve(2), "b"), /device lost/);
  await steps.drop();
  await steps.flush();
  assert.deepEqual(log, []);
});
