/**
 * An engine whose storage bindings are capped far below the adapter's limit, so that tests of
 * the chunked paths (tensors larger than one binding) run on small tensors.
 */
import { Engine } from "../../src/tensor/engine.ts";
import "../../src/tensor/ops/mod.ts";

export const SMALL_BINDING_BYTES = 65536;

/** A GPU test on its own engine whose bindings hold at most SMALL_BINDING_BYTES each. */
export function smallBindingTest(name: string, fn: (e: Engine) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const e = await Engine.create();
      e.gpu.limits.maxStorageBufferBindingSize = SMALL_BINDING_BYTES;
      try {
        await fn(e);
        await e.gpu.sync();
      } finally {
        e.destroy();
      }
    },
  });
}

/** Runs fn with the shared engine's bindings capped at `bytes`, then restores the real limit. */
export async function withBindingLimit(
  e: Engine,
  bytes: number,
  fn: () => Promise<void>,
): Promise<void> {
  const limits = e.gpu.limits;
  const saved = limits.maxStorageBufferBindingSize;
  limits.maxStorageBufferBindingSize = bytes;
  try {
    await fn();
  } finally {
    limits.maxStorageBufferBindingSize = saved;
  }
}
