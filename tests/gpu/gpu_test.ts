import assert from "node:assert/strict";
import { Gpu, GpuValidationError } from "../../src/gpu/gpu.ts";
import { acquireDevice, adapterSlug, NoAdapterError } from "../../src/gpu/device.ts";
import { formatBytes, OutOfMemoryError, parseBytes, sizeClass } from "../../src/gpu/allocator.ts";

const gpuTest = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

const copyShader = `
struct Params { n: u32, add: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
override FACTOR: f32 = 1.0;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < p.n) { dst[gid.x] = src[gid.x] * FACTOR + p.add; }
}`;

/** copyShader's uniform: n (u32) and add (f32), padded to WGSL's 16 bytes. */
function copyParams(n: number, add: number): ArrayBuffer {
  const buf = new ArrayBuffer(16);
  const view = new DataView(buf);
  view.setUint32(0, n, true);
  view.setFloat32(4, add, true);
  return buf;
}

gpuTest("dispatches batch into one submit and read back", async () => {
  const gpu = await Gpu.create();
  try {
    const a = gpu.alloc(40, "a");
    const b = gpu.alloc(40, "b");
    gpu.upload(a, new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const submitsBefore = gpu.submits;
    for (let i = 0; i < 5; i++) {
      gpu.dispatch({
        kernel: "copy",
        shader: copyShader,
        params: copyParams(10, 1),
        bindings: [i % 2 ? b : a, i % 2 ? a : b],
        workgroups: [1],
      });
    }
    const out = new Float32Array(await gpu.read(b));
    assert.deepEqual([...out], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    assert.equal(gpu.submits - submitsBefore, 1, "five dispatches and a read make one submit");
  } finally {
    gpu.destroy();
  }
});

gpuTest(
  "repeated dispatches share a parameter slot and a bind group; others get their own",
  async () => {
    const gpu = await Gpu.create();
    try {
      const a = gpu.alloc(16, "a");
      const b = gpu.alloc(16, "b");
      const c = gpu.alloc(16, "c");
      gpu.upload(a, new Float32Array([1, 2, 3, 4]));
      const copy = (add: number, dst = b) =>
        gpu.dispatch({
          kernel: "copy",
          shader: copyShader,
          params: copyParams(4, add),
          bindings: [a, dst],
          workgroups: [1],
        });
      const groupsBefore = gpu.bindGroups.size;
      copy(1);
      copy(1);
      assert.equal(gpu.bindGroups.size - groupsBefore, 1, "the same parameters and buffers");
      assert.deepEqual([...new Float32Array(await gpu.read(b))], [2, 3, 4, 5]);
      // After the submit the arena is refilled: the same parameters land in the same slot again.
      copy(1);
      assert.equal(gpu.bindGroups.size - groupsBefore, 1, "the same slot after a submit");
      copy(2, c);
      copy(3);
      assert.equal(gpu.bindGroups.size - groupsBefore, 3, "other parameters or buffers");
      assert.deepEqual([...new Float32Array(await gpu.read(c))], [3, 4, 5, 6]);
      assert.deepEqual([...new Float32Array(await gpu.read(b))], [4, 5, 6, 7]);
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest("pipelines are cached by shader and constants", async () => {
  const gpu = await Gpu.create();
  try {
    const a = gpu.alloc(16, "a");
    const b = gpu.alloc(16, "b");
    gpu.upload(a, new Float32Array([1, 2, 3, 4]));
    const run = (factor: number) =>
      gpu.dispatch({
        kernel: "scaled copy",
        shader: copyShader,
        constants: { FACTOR: factor },
        params: copyParams(4, 0),
        bindings: [a, b],
        workgroups: [1],
      });
    run(2);
    assert.deepEqual([...new Float32Array(await gpu.read(b))], [2, 4, 6, 8]);
    run(3);
    run(3);
    assert.deepEqual([...new Float32Array(await gpu.read(b))], [3, 6, 9, 12]);
    assert.equal(gpu.pipelines.size, 2);
  } finally {
    gpu.destroy();
  }
});

gpuTest("a shader error is an exception naming the kernel", async () => {
  const gpu = await Gpu.create();
  try {
    await assert.rejects(async () => {
      gpu.dispatch({
        kernel: "broken kernel",
        shader: "@compute @workgroup_size(1) fn main() { let x: f32 = ; }",
        bindings: [],
        workgroups: [1],
      });
      await gpu.sync();
    }, (e: Error) => {
      assert.ok(e instanceof GpuValidationError, String(e));
      assert.match(e.message, /broken kernel/);
      return true;
    });
  } finally {
    gpu.destroy();
  }
});

gpuTest("a binding mismatch is an exception naming the kernel", async () => {
  const gpu = await Gpu.create();
  try {
    const a = gpu.alloc(16, "a");
    assert.throws(
      () =>
        gpu.dispatch({
          kernel: "copy with a missing buffer",
          shader: copyShader,
          params: copyParams(4, 0),
          bindings: [a],
          workgroups: [1],
        }),
      /copy with a missing buffer/,
    );
  } catch (e) {
    // Some implementations defer the failure to the error scope instead of throwing.
    assert.ok(e instanceof assert.AssertionError);
    await assert.rejects(() => gpu.sync(), /copy with a missing buffer/);
  } finally {
    gpu.destroy();
  }
});

gpuTest("allocator reuses freed buffers and tracks live and peak bytes", async () => {
  const gpu = await Gpu.create();
  try {
    const al = gpu.allocator;
    al.resetPeaks();
    const live0 = al.liveBytes;
    const a = gpu.alloc(1000, "a");
    const b = gpu.alloc(5000, "b");
    assert.equal(al.liveBytes - live0, sizeClass(1000) + sizeClass(5000));
    gpu.release(a);
    assert.equal(al.liveBytes - live0, sizeClass(5000));
    const before = al.allocations;
    const c = gpu.alloc(900, "c");
    assert.equal(c.buffer, a.buffer, "same size class reuses the freed buffer");
    assert.equal(al.allocations, before);
    assert.equal(al.peakLiveBytes - live0, sizeClass(1000) + sizeClass(5000));
    gpu.release(b);
    gpu.release(c);
    assert.equal(al.liveBytes, live0);
  } finally {
    gpu.destroy();
  }
});

gpuTest(
  "the pool of freed buffers stays bounded; evicted buffers outlive pending commands",
  async () => {
    const gpu = await Gpu.create();
    try {
      const al = gpu.allocator;
      const mib = 1 << 20;
      const big = gpu.alloc(200 * mib, "big");
      gpu.release(big);
      assert.ok(al.peakLiveBytes >= 200 * mib);
      const limit = Math.max(4 * mib, al.peakLiveBytes / 8);
      assert.ok(al.pooledBytes <= limit, `pooled ${al.pooledBytes} > ${limit}`);
      // Buffers of many sizes (trimmed batches) freed in turn: the least recently freed go first.
      const sizes = Array.from({ length: 40 }, (_, i) => (i + 1) * mib + 4096);
      for (const n of sizes) gpu.release(gpu.alloc(n, "step"));
      assert.ok(al.pooledBytes <= limit, `pooled ${al.pooledBytes} > ${limit}`);
      assert.ok(al.evictions > 0);
      const last = gpu.alloc(sizes[39], "again");
      assert.equal(al.reuses > 0, true, "the most recently freed size is still pooled");
      // A buffer evicted while an unsubmitted dispatch reads it must survive until the submit.
      const src = gpu.alloc(40, "src");
      const dst = gpu.alloc(40, "dst");
      gpu.upload(src, new Float32Array(10).fill(2));
      gpu.dispatch({
        kernel: "copy",
        shader: copyShader,
        params: copyParams(10, 1),
        bindings: [src, dst],
        workgroups: [1],
      });
      gpu.release(src);
      al.trimPool();
      assert.deepEqual([...new Float32Array(await gpu.read(dst))], new Array(10).fill(3));
      gpu.release(last);
      gpu.release(dst);
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest(
  "with steady shapes a step's freed buffers serve the next; the bound returns after",
  async () => {
    const gpu = await Gpu.create();
    try {
      const al = gpu.allocator;
      const mib = 1 << 20;
      const sizes = Array.from({ length: 20 }, (_, i) => (i + 1) * mib + 4096);
      const step = () => {
        const live = sizes.map((n) => gpu.alloc(n, "activation"));
        for (const a of live) gpu.release(a);
      };
      await al.withSteadyShapes(() => {
        step();
        const created = al.allocations;
        step();
        assert.equal(al.allocations, created, "the second step creates no buffer");
        return Promise.resolve();
      });
      const limit = Math.max(4 * mib, al.peakLiveBytes / 8);
      assert.ok(al.pooledBytes <= limit, `pooled ${al.pooledBytes} > ${limit} after`);
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest(
  "with steady shapes drifting sizes take a pooled buffer of up to twice their class, counted at its size",
  async () => {
    const gpu = await Gpu.create();
    try {
      const al = gpu.allocator;
      const mib = 1 << 20;
      // Sizes that move across size classes from step to step, as CoLES batches' events do.
      const sizes = Array.from({ length: 24 }, (_, i) => (i + 1) * 0.37 * mib + 1000);
      const step = (scale: number) => {
        const live = sizes.map((n) => gpu.alloc(Math.round(n * scale), "activation"));
        for (const a of live) gpu.release(a);
      };
      await al.withSteadyShapes(() => {
        step(1);
        const created = al.allocations;
        step(1.04);
        step(0.97);
        // Grown sizes each take the next class's buffer, so only the largest needs a new one.
        assert.ok(al.allocations - created <= 1, `${al.allocations - created} buffers created`);
        // What a request takes counts its real size: bigger than its own size class.
        const small = gpu.alloc(5 * mib, "small");
        assert.ok(small.capacity >= sizeClass(5 * mib) && small.capacity <= 2 * sizeClass(5 * mib));
        const liveBefore = al.liveBytes;
        gpu.release(small);
        assert.equal(liveBefore - al.liveBytes, small.capacity);
        // Nothing more than twice the class: a tiny request does not take a big buffer.
        const tiny = gpu.alloc(1000, "tiny");
        assert.ok(tiny.capacity <= 2 * sizeClass(1000), `tiny took ${tiny.capacity} bytes`);
        gpu.release(tiny);
        return Promise.resolve();
      });
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest(
  "with steady shapes the reserved bytes stay within the peak live bytes and the bounded pool",
  async () => {
    const gpu = await Gpu.create();
    try {
      const al = gpu.allocator;
      const mib = 1 << 20;
      await al.withSteadyShapes(() => {
        al.resetPeaks();
        // Each step's buffers are three times the last's: nothing pooled fits, so without the
        // bound the pool would hold every earlier step beside the live one.
        for (const n of [1, 3, 9, 27]) {
          const live = Array.from({ length: 4 }, () => gpu.alloc(n * mib, "activation"));
          for (const a of live) gpu.release(a);
        }
        const bound = al.peakLiveBytes + Math.max(4 * mib, al.peakLiveBytes / 8);
        assert.ok(al.peakReservedBytes <= bound, `reserved ${al.peakReservedBytes} > ${bound}`);
        return Promise.resolve();
      });
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest("out of memory names the bytes wanted and the limit", async () => {
  const gpu = await Gpu.create({ memoryLimit: 1 << 20 });
  try {
    gpu.alloc(600_000, "first");
    assert.throws(() => gpu.alloc(700_000, "activations"), (e: Error) => {
      assert.ok(e instanceof OutOfMemoryError, String(e));
      assert.match(e.message, /activations wants 684 KiB \(700000 bytes\)/);
      assert.match(e.message, /limit is 1.00 MiB \(1048576 bytes\)/);
      return true;
    });
    assert.throws(() => gpu.alloc(2 ** 40, "a huge table"), /a huge table \(one buffer\)/);
  } finally {
    gpu.destroy();
  }
});

gpuTest("no adapter gives an actionable message", async () => {
  const gpuObj = navigator.gpu;
  const original = gpuObj.requestAdapter;
  Object.defineProperty(gpuObj, "requestAdapter", {
    value: () => Promise.resolve(null),
    configurable: true,
  });
  try {
    await assert.rejects(() => acquireDevice(), (e: Error) => {
      assert.ok(e instanceof NoAdapterError);
      assert.match(e.message, /apt-get install -y libegl1 libgl1-mesa-dri/);
      return true;
    });
  } finally {
    Object.defineProperty(gpuObj, "requestAdapter", { value: original, configurable: true });
  }
});

gpuTest("the adapter is described in one line with its real limits", async () => {
  const gpu = await Gpu.create();
  try {
    assert.ok(gpu.adapterName.length > 0 && !gpu.adapterName.includes("\n"));
    assert.ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
    assert.match(adapterSlug("llvmpipe (LLVM 15.0.6, 256 bits) [software]"), /^llvmpipe$/);
  } finally {
    gpu.destroy();
  }
});

gpuTest("profiling times each kernel with timestamp queries", async () => {
  const gpu = await Gpu.create({ profile: true });
  try {
    if (!gpu.profiler) return; // adapter without timestamp-query
    const a = gpu.alloc(4096, "a");
    const b = gpu.alloc(4096, "b");
    for (let i = 0; i < 3; i++) {
      gpu.dispatch({
        kernel: "timed copy",
        shader: copyShader,
        params: copyParams(1024, 0),
        bindings: [a, b],
        workgroups: [16],
      });
    }
    await gpu.sync();
    const report = gpu.profiler.report();
    assert.equal(report[0].kernel, "timed copy");
    assert.equal(report[0].count, 3);
    assert.ok(report[0].totalMs >= 0);
  } finally {
    gpu.destroy();
  }
});

Deno.test("byte sizes parse and print", () => {
  assert.equal(parseBytes("2GiB"), 2 ** 31);
  assert.equal(parseBytes("512 MiB"), 512 * 2 ** 20);
  assert.equal(parseBytes("1.5GB"), 1.5e9);
  assert.equal(parseBytes("1000"), 1000);
  assert.throws(() => parseBytes("lots"), /not a byte size/);
  assert.equal(formatBytes(1536), "1.50 KiB");
});
