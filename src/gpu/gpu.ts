/**
 * The GPU runtime: one device, its allocator, the pipeline cache and a command recorder that puts
 * a whole training step into few submits. Kernels take their sizes from a uniform arena that is
 * uploaded once per submit, so recording a dispatch never touches the queue; identical parameters
 * share a slot of it, so that repeated dispatches reuse their bind group.
 */
import { acquireDevice, type AcquireOptions, type GpuLimits } from "./device.ts";
import { Allocator, type GpuAllocation, STORAGE_USAGE } from "./allocator.ts";
import { BindGroupCache } from "./bind_groups.ts";
import { PipelineCache } from "./pipelines.ts";
import { KernelProfiler } from "./profiler.ts";

export class GpuValidationError extends Error {
  constructor(public where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = "GpuValidationError";
  }
}

/** A storage binding: a whole allocation or a window of it (offset aligned to the adapter). */
export interface BufferWindow {
  alloc: GpuAllocation;
  offset: number;
  size: number;
}
export type Binding = GpuAllocation | BufferWindow;

export interface Dispatch {
  kernel: string;
  shader: string;
  entry?: string;
  constants?: Record<string, number>;
  /** Uniform parameters at @binding(0), when the shader has them. */
  params?: ArrayBuffer | ArrayBufferView<ArrayBuffer>;
  /**
   * Storage buffers at the following bindings, in order; null skips a binding number (an entry
   * point that does not use every binding the shader file declares).
   */
  bindings: (Binding | null)[];
  workgroups: [number, number?, number?];
}

export interface GpuOptions extends AcquireOptions {
  /** Bytes the allocator may reserve; defaults to `defaultMemoryLimit`. */
  memoryLimit?: number;
  /** Time every dispatch with timestamp queries (adapter permitting). */
  profile?: boolean;
}

export const ARENA_BYTES = 1 << 18;
const MAX_DISPATCHES_PER_SUBMIT = 2048;

export class Gpu {
  readonly allocator: Allocator;
  readonly pipelines: PipelineCache;
  readonly profiler: KernelProfiler | null;
  submits = 0;
  dispatches = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingInEncoder = 0;
  private errors: { what: string; scope: Promise<GPUError | null> }[] = [];
  private arena: GpuAllocation;
  private arenaCpu = new Uint8Array(ARENA_BYTES);
  private arenaUsed = 0;
  /** This submit's arena offset of each distinct parameter block, by its bytes. */
  private arenaSlots = new Map<string, number>();
  readonly bindGroups: BindGroupCache;
  private destroyed = false;

  private constructor(
    readonly device: GPUDevice,
    readonly limits: GpuLimits,
    readonly adapterName: string,
    /** A CPU implementation of WebGPU (llvmpipe, lavapipe, SwiftShader): kernels choose their shape by it. */
    readonly isSoftware: boolean,
    memoryLimit: number,
    profile: boolean,
  ) {
    this.allocator = new Allocator(device, memoryLimit, limits.maxBufferSize);
    this.pipelines = new PipelineCache(device, (what, scope) => this.errors.push({ what, scope }));
    this.bindGroups = new BindGroupCache(device);
    this.profiler = profile ? new KernelProfiler(device, this.allocator) : null;
    this.arena = this.allocator.alloc(
      ARENA_BYTES,
      "uniform arena",
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    );
    device.addEventListener?.("uncapturederror", (e) => {
      this.errors.push({
        what: "uncaptured GPU error",
        scope: Promise.resolve((e as GPUUncapturedErrorEvent).error),
      });
    });
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const acquired = await acquireDevice({ ...opts, timestamps: opts.profile ?? false });
    const limit = opts.memoryLimit ?? defaultMemoryLimit(acquired.isSoftware);
    return new Gpu(
      acquired.device,
      acquired.limits,
      acquired.adapterName,
      acquired.isSoftware,
      limit,
      (opts.profile ?? false) && acquired.hasTimestamps,
    );
  }

  /** Allocates a storage buffer through the allocator. */
  alloc(bytes: number, what: string): GpuAllocation {
    return this.allocator.alloc(bytes, what, STORAGE_USAGE);
  }

  /** Frees a buffer once the commands already recorded are done with it (they run in order). */
  release(a: GpuAllocation): void {
    this.allocator.release(a);
  }

  dispatch(d: Dispatch): void {
    const { pipeline, layout } = this.pipelines.get(d);
    const [x, y = 1, z = 1] = d.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxGroups = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxGroups || y > maxGroups || z > maxGroups) {
      throw new Error(`kernel ${d.kernel}: grid ${x}×${y}×${z} exceeds ${maxGroups} per dimension`);
    }
    if (this.pendingInEncoder >= MAX_DISPATCHES_PER_SUBMIT) this.submit();
    const entries: GPUBindGroupEntry[] = [];
    if (d.params) {
      const bytes: Uint8Array = d.params instanceof ArrayBuffer
        ? new Uint8Array(d.params)
        : new Uint8Array(d.params.buffer, d.params.byteOffset, d.params.byteLength);
      const size = Math.ceil(bytes.byteLength / 16) * 16;
      const offset = this.arenaSlot(bytes, size);
      entries.push({ binding: 0, resource: { buffer: this.arena.buffer, offset, size } });
    }
    const first = entries.length;
    d.bindings.forEach((b, i) => {
      if (!b) return;
      const w = "alloc" in b ? b : { alloc: b, offset: 0, size: b.capacity };
      if (w.alloc.released) throw new Error(`kernel ${d.kernel}: binding ${i} was already freed`);
      if (w.size > this.limits.maxStorageBufferBindingSize) {
        throw new Error(
          `kernel ${d.kernel}: binding ${i} is ${w.size} bytes, over the ` +
            `${this.limits.maxStorageBufferBindingSize}-byte binding limit (chunk it)`,
        );
      }
      entries.push({
        binding: first + i,
        resource: { buffer: w.alloc.buffer, offset: w.offset, size: w.size },
      });
    });
    this.device.pushErrorScope("validation");
    const bindGroup = this.bindGroups.get(d.kernel, layout, entries);
    const pass = this.computePass(d.kernel);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.endPass();
    this.errors.push({ what: `kernel ${d.kernel}`, scope: this.device.popErrorScope() });
    this.pendingInEncoder++;
    this.dispatches++;
  }

  /**
   * Where `bytes` of parameters sit in this submit's arena: identical parameters share one slot,
   * so that repeated dispatches bind identical ranges and reuse one bind group.
   */
  private arenaSlot(bytes: Uint8Array, size: number): number {
    const key = String.fromCharCode.apply(null, bytes as unknown as number[]);
    const shared = this.arenaSlots.get(key);
    if (shared !== undefined) return shared;
    if (this.arenaUsed + size > ARENA_BYTES) this.submit();
    const offset = this.arenaUsed;
    this.arenaCpu.set(bytes, offset);
    const align = this.limits.minUniformBufferOffsetAlignment;
    this.arenaUsed = Math.ceil((offset + size) / align) * align;
    this.arenaSlots.set(key, offset);
    return offset;
  }

  /** Records a buffer-to-buffer copy in order with the dispatches. */
  copy(
    src: GpuAllocation,
    srcOffset: number,
    dst: GpuAllocation,
    dstOffset: number,
    bytes: number,
  ) {
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, bytes);
    this.pendingInEncoder++;
  }

  /** Writes host data into a buffer after the work recorded so far. */
  upload(dst: GpuAllocation, data: ArrayBufferView, dstOffset = 0): void {
    // queue.writeBuffer runs before unsubmitted commands, which may still read a pooled buffer.
    if (this.pendingInEncoder > 0) this.submit();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const chunk = 1 << 26;
    for (let off = 0; off < bytes.byteLength; off += chunk) {
      const part = bytes.subarray(off, Math.min(off + chunk, bytes.byteLength));
      this.device.queue.writeBuffer(dst.buffer, dstOffset + off, part as Uint8Array<ArrayBuffer>);
    }
  }

  /** Fills bytes [offset, offset+bytes) with zeros, in order with the dispatches. */
  clear(dst: GpuAllocation, offset = 0, bytes = dst.capacity - offset): void {
    if (bytes <= 0) return;
    this.endPass();
    this.getEncoder().clearBuffer(dst.buffer, offset, bytes);
    this.pendingInEncoder++;
  }

  /** Ends recording and hands the commands to the queue (no wait). */
  submit(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(this.arena.buffer, 0, this.arenaCpu, 0, this.arenaUsed);
    }
    this.profiler?.resolve(this.encoder);
    this.device.pushErrorScope("validation");
    const commands = this.encoder.finish();
    this.device.queue.submit([commands]);
    this.errors.push({ what: "submitting commands", scope: this.device.popErrorScope() });
    this.encoder = null;
    this.arenaUsed = 0;
    this.arenaSlots.clear();
    this.pendingInEncoder = 0;
    this.submits++;
    this.allocator.destroyRetired();
    this.profiler?.afterSubmit();
  }

  /** Submits, waits for the GPU and throws the first validation error, naming its kernel. */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.throwErrors();
    await this.profiler?.collect();
  }

  async throwErrors(): Promise<void> {
    const errors = this.errors;
    this.errors = [];
    for (const { what, scope } of errors) {
      const err = await scope;
      if (err) throw new GpuValidationError(what, err.message);
    }
  }

  /** Reads bytes back to the host; flushes the recorded work first. */
  async read(src: GpuAllocation, offset = 0, bytes = src.bytes - offset): Promise<ArrayBuffer> {
    const staging = this.allocator.alloc(
      bytes,
      "readback staging",
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    );
    try {
      const padded = Math.ceil(bytes / 4) * 4;
      this.copy(src, offset, staging, 0, padded);
      this.submit();
      await staging.buffer.mapAsync(GPUMapMode.READ, 0, padded);
      const out = staging.buffer.getMappedRange(0, padded).slice(0, bytes);
      staging.buffer.unmap();
      await this.throwErrors();
      return out;
    } finally {
      this.allocator.release(staging);
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.submit();
    this.allocator.trimPool();
    this.allocator.destroyRetired();
    this.device.destroy();
  }

  private getEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private computePass(kernel: string): GPUComputePassEncoder {
    if (this.profiler) {
      if (!this.profiler.hasRoom()) this.submit();
      return (this.pass = this.getEncoder().beginComputePass({
        timestampWrites: this.profiler.nextWrites(kernel),
      }));
    }
    if (!this.pass) this.pass = this.getEncoder().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }
}

/**
 * WebGPU does not report device memory. A software adapter allocates system memory, so its budget
 * is 75% of RAM; for a hardware adapter the budget is 8 GiB unless the caller sets one.
 */
export function defaultMemoryLimit(isSoftware: boolean): number {
  return isSoftware ? Math.floor(Deno.systemMemoryInfo().total * 0.75) : 8 * 1024 ** 3;
}

/** Splits a grid of `groups` workgroups into x × y under the per-dimension limit. */
export function grid2d(groups: number, maxPerDim = 65535): [number, number] {
  if (groups <= maxPerDim) return [Math.max(groups, 0), 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
