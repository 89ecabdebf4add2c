/**
 * timeInterleaved, bench:sparse's one-token timing: every round times every work once, the order
 * rotating, and a figure per work that is the median of its rounds with the sync's fixed cost
 * taken off.
 */
import assert from "node:assert/strict";
import { blockSizes, formatRoundRatios, timeInterleaved } from "../../bench/util.ts";
import type { Gpu } from "../../src/gpu/gpu.ts";

/** Keeps the thread busy for `ms` (a work of known length). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

/** A Gpu whose sync only waits `ms`: what llvmpipe's wait for finished work looks like. */
function fakeGpu(ms: number): Gpu {
  return { sync: () => new Promise<void>((resolve) => setTimeout(resolve, ms)) } as unknown as Gpu;
}

Deno.test("timeInterleaved: rounds rotate the order, every work once per round", async () => {
  const log: string[] = [];
  const works = ["a", "b", "c"].map((name) => () => {
    log.push(name);
    spin(0.05);
  });
  const rounds = 4;
  const t = await timeInterleaved(fakeGpu(0), works, { rounds, targetMs: 1 });
  assert.equal(t.length, 3);
  for (const w of t) {
    assert.equal(w.perRound.length, rounds);
    assert.ok(w.calls >= 1);
  }
  // The rounds come last: each a batch of every work, starting one work later each round.
  const batches: string[] = [];
  for (const name of log) if (batches[batches.length - 1] !== name) batches.push(name);
  assert.deepEqual(batches.slice(-3 * rounds), [
    ..."abc",
    ..."bca",
    ..."cab",
    ..."abc",
  ]);
});

Deno.test("timeInterleaved: a call's time without the sync's fixed cost", async () => {
  // A 2 ms work against a 20 ms sync: the sync spread over the calls of a 10 ms batch would
  // read as 4 ms more per call.
  const [t] = await timeInterleaved(fakeGpu(20), [() => spin(2)], { rounds: 3, targetMs: 10 });
  assert.ok(t.ms >= 1.8 && t.ms < 4, `${t.ms} ms per call`);
});

Deno.test("blockSizes: steps cut into blocks as even as they go, none empty", () => {
  assert.deepEqual(blockSizes(30, 5), [6, 6, 6, 6, 6]);
  assert.deepEqual(blockSizes(7, 3), [2, 2, 3]);
  assert.deepEqual(blockSizes(2, 5), [1, 1]);
  assert.deepEqual(blockSizes(4, 1), [4]);
  assert.deepEqual(blockSizes(0, 5), []);
});

Deno.test("formatRoundRatios: the peer's seconds over ours per round, with their median", () => {
  assert.equal(formatRoundRatios([1, 2, 4], [1, 1, 5]), "1.000 0.500 1.250 (median 1.000)");
  assert.equal(formatRoundRatios([1, 2], [1]), null);
  assert.equal(formatRoundRatios([], []), null);
});
