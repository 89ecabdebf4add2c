/** GPU tensors: a shape, a dtype and one allocator buffer, plus what autograd needs. */
import type { GpuAllocation } from "../gpu/allocator.ts";
import type { Engine } from "./engine.ts";

export type DType = "f32" | "i32" | "u32";
export type HostArray = Float32Array | Int32Array | Uint32Array;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

export class ShapeError extends Error {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = "ShapeError";
  }
}

/** Gradient rows for a subset of a table's rows (embedding backward): rows[i] belongs to ids[i]. */
export interface SparseRows {
  /** Sorted unique row ids, also on the host. */
  ids: Int32Array;
  idsGpu: Tensor;
  /** [ids.length, cols] */
  rows: Tensor;
}

export class Tensor {
  grad: Tensor | null = null;
  sparseGrads: SparseRows[] = [];
  /** The host copy the tensor was created from, kept for id tensors whose backward needs it. */
  host: HostArray | null = null;
  private disposed = false;

  constructor(
    readonly engine: Engine,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly storage: GpuAllocation,
    public requiresGrad = false,
    public name = "",
  ) {}

  get size(): number {
    return numel(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Reads the tensor back (flushes recorded work). */
  async read(): Promise<HostArray> {
    this.assertAlive("read");
    if (this.size === 0) return hostArray(this.dtype, 0);
    const buf = await this.engine.gpu.read(this.storage, 0, this.size * 4);
    return hostArray(this.dtype, buf);
  }

  async readF32(): Promise<Float32Array> {
    if (this.dtype !== "f32") throw new Error(`readF32 on a ${this.dtype} tensor`);
    return (await this.read()) as Float32Array;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (--this.storage.refs === 0) this.engine.gpu.release(this.storage);
    this.engine.forget(this);
  }

  /** Drops the gradients accumulated on this tensor. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
    for (const s of this.sparseGrads) {
      s.idsGpu.dispose();
      s.rows.dispose();
    }
    this.sparseGrads = [];
  }

  assertAlive(op: string): void {
    if (this.disposed) {
      throw new Error(`${op}: tensor ${this.name || shapeString(this.shape)} was disposed`);
    }
  }

  toString(): string {
    return `Tensor(${this.dtype}${shapeString(this.shape)}${this.name ? " " + this.name : ""})`;
  }
}

export function hostArray(dtype: DType, src: ArrayBuffer | number): HostArray {
  const C = dtype === "f32" ? Float32Array : dtype === "i32" ? Int32Array : Uint32Array;
  return typeof src === "number" ? new C(src) : new C(src);
}
