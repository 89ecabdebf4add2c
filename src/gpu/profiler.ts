/** Per-kernel GPU time from timestamp queries: one compute pass per dispatch while profiling. */
import type { Allocator, GpuAllocation } from "./allocator.ts";

const CAPACITY = 2048; // queries per submit; two per dispatch

export interface KernelTime {
  kernel: string;
  count: number;
  totalMs: number;
}

export class KernelProfiler {
  private querySet: GPUQuerySet;
  private resolveBuf: GpuAllocation;
  private used = 0;
  private names: string[] = [];
  private pending: { staging: GpuAllocation; names: string[] }[] = [];
  private totals = new Map<string, KernelTime>();

  constructor(private device: GPUDevice, private allocator: Allocator) {
    this.querySet = device.createQuerySet({ type: "timestamp", count: CAPACITY });
    this.resolveBuf = allocator.alloc(
      CAPACITY * 8,
      "profiler resolve",
      GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    );
  }

  hasRoom(): boolean {
    return this.used + 2 <= CAPACITY;
  }

  nextWrites(kernel: string): GPUComputePassTimestampWrites {
    const begin = this.used;
    this.used += 2;
    this.names.push(kernel);
    return {
      querySet: this.querySet,
      beginningOfPassWriteIndex: begin,
      endOfPassWriteIndex: begin + 1,
    };
  }

  resolve(encoder: GPUCommandEncoder): void {
    if (this.used === 0) return;
    const bytes = this.used * 8;
    const staging = this.allocator.alloc(
      bytes,
      "profiler staging",
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    );
    encoder.resolveQuerySet(this.querySet, 0, this.used, this.resolveBuf.buffer, 0);
    encoder.copyBufferToBuffer(this.resolveBuf.buffer, 0, staging.buffer, 0, bytes);
    this.pending.push({ staging, names: this.names });
  }

  afterSubmit(): void {
    this.used = 0;
    this.names = [];
  }

  async collect(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    for (const { staging, names } of pending) {
      await staging.buffer.mapAsync(GPUMapMode.READ, 0, names.length * 16);
      const t = new BigUint64Array(staging.buffer.getMappedRange(0, names.length * 16));
      names.forEach((kernel, i) => {
        const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
        const entry = this.totals.get(kernel) ?? { kernel, count: 0, totalMs: 0 };
        entry.count++;
        entry.totalMs += Math.max(ms, 0);
        this.totals.set(kernel, entry);
      });
      staging.buffer.unmap();
      this.allocator.release(staging);
    }
  }

  /** Kernels by total time, most expensive first. */
  report(): KernelTime[] {
    return [...this.totals.values()].sort((a, b) => b.totalMs - a.totalMs);
  }

  reset(): void {
    this.totals.clear();
  }
}
