import assert from "node:assert/strict";
import { chunkRowsFor } from "../../src/tensor/ops/windowed.ts";
import { gpuTest } from "../support/check.ts";

gpuTest("column chunks: 16-row chunks on a GPU, about 16 a core on a software adapter", (e) => {
  const gpu = e.gpu as { isSoftware: boolean };
  const saved = gpu.isSoftware;
  const cores = navigator.hardwareConcurrency;
  const maxGroups = e.gpu.limits.maxComputeWorkgroupsPerDimension;
  try {
    gpu.isSoftware = false;
    assert.equal(chunkRowsFor(e, 6376), 16);
    assert.equal(chunkRowsFor(e, 1), 16);
    assert.equal(chunkRowsFor(e, 100 * maxGroups), 100);
    gpu.isSoftware = true;
    assert.equal(chunkRowsFor(e, 6376), Math.max(16, Math.ceil(6376 / (16 * cores))));
    assert.equal(chunkRowsFor(e, 1), 16);
    // Past 2^15 rows a chunk, more chunks: llvmpipe stops a loop after ~65,535 iterations.
    assert.equal(chunkRowsFor(e, 1 << 30), Math.max(1 << 15, Math.ceil(2 ** 30 / maxGroups)));
  } finally {
    gpu.isSoftware = saved;
  }
});
