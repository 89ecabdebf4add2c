/**
 * The engine owns the GPU runtime, the active autograd tape and tensor lifetimes. Tensors made
 * inside `tidy` are freed when it returns, except those returned or kept (parameters, grads).
 */
import { Gpu, type GpuOptions } from "../gpu/gpu.ts";
import { type DType, type HostArray, numel, shapeString, Tensor } from "./tensor.ts";
import { runBackward, Tape, type TapeNode } from "./tape.ts";

export interface EngineHooks {
  accumulate: (into: Tensor, g: Tensor) => void;
  clone: (g: Tensor) => Tensor;
  fill: (t: Tensor, value: number) => void;
}

let hooks: EngineHooks | null = null;

/** Registered by the ops layer (which imports the engine, not the other way round). */
export function registerEngineHooks(h: EngineHooks): void {
  hooks = h;
}

export class Engine {
  tape: Tape | null = null;
  private scopes: Set<Tensor>[] = [];

  constructor(readonly gpu: Gpu) {}

  static async create(opts: GpuOptions = {}): Promise<Engine> {
    return new Engine(await Gpu.create(opts));
  }

  /** An uninitialised tensor. */
  empty(shape: readonly number[], dtype: DType = "f32", name = ""): Tensor {
    for (const s of shape) {
      if (!Number.isInteger(s) || s < 0) {
        throw new Error(`invalid shape ${shapeString(shape)} for ${name || "tensor"}`);
      }
    }
    const bytes = numel(shape) * 4;
    const what = `${name || "tensor"} ${dtype}${shapeString(shape)}`;
    const t = new Tensor(this, [...shape], dtype, this.gpu.alloc(bytes, what), false, name);
    this.scopes.at(-1)?.add(t);
    return t;
  }

  /** A tensor of another shape over the same buffer (no copy). */
  alias(t: Tensor, shape: readonly number[], name = t.name): Tensor {
    t.assertAlive("alias");
    if (numel(shape) !== t.size) {
      throw new Error(
        `reshape: cannot view ${shapeString(t.shape)} (${t.size} elements) as ${
          shapeString(shape)
        }`,
      );
    }
    t.storage.refs++;
    const a = new Tensor(this, [...shape], t.dtype, t.storage, false, name);
    a.host = t.host;
    this.scopes.at(-1)?.add(a);
    return a;
  }

  zeros(shape: readonly number[], dtype: DType = "f32", name = ""): Tensor {
    const t = this.empty(shape, dtype, name);
    this.gpu.clear(t.storage);
    return t;
  }

  full(shape: readonly number[], value: number, name = ""): Tensor {
    const t = this.empty(shape, "f32", name);
    requireHooks().fill(t, value);
    return t;
  }

  /** Uploads host data; integer arrays keep their host copy (backward of lookups needs it). */
  tensor(data: HostArray | number[], shape: readonly number[], dtype?: DType, name = ""): Tensor {
    const kind: DType = dtype ??
      (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
    const host = toHost(data, kind);
    if (host.length !== numel(shape)) {
      throw new Error(
        `${name || "tensor"}: ${host.length} values do not fill shape ${shapeString(shape)}`,
      );
    }
    const t = this.empty(shape, kind, name);
    if (host.length) this.gpu.upload(t.storage, host);
    if (kind !== "f32") t.host = host;
    return t;
  }

  /** A trainable leaf that outlives every tidy scope. */
  parameter(data: Float32Array, shape: readonly number[], name: string): Tensor {
    const t = this.tensor(data, shape, "f32", name);
    t.requiresGrad = true;
    this.keep(t);
    return t;
  }

  /** Removes tensors from the enclosing scopes, so they live until disposed by hand. */
  keep(...tensors: Tensor[]): void {
    for (const t of tensors) for (const s of this.scopes) s.delete(t);
  }

  forget(t: Tensor): void {
    this.scopes.at(-1)?.delete(t);
  }

  /** Runs fn; frees every tensor it created except the ones it returns (also inside arrays). */
  tidy<T>(fn: () => T): T {
    const scope = new Set<Tensor>();
    this.scopes.push(scope);
    let result: T;
    try {
      result = fn();
    } finally {
      this.scopes.pop();
    }
    this.closeScope(scope, result);
    return result;
  }

  /** tidy for async work; scopes nest, so do not run two of these concurrently. */
  async tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
    const scope = new Set<Tensor>();
    this.scopes.push(scope);
    let result: T;
    try {
      result = await fn();
    } finally {
      // Scopes are a stack: an interleaved tidyAsync would pop someone else's scope.
      this.scopes.splice(this.scopes.lastIndexOf(scope), 1);
    }
    this.closeScope(scope, result);
    return result;
  }

  private closeScope(scope: Set<Tensor>, result: unknown): void {
    const survivors = collectTensors(result);
    for (const t of scope) {
      if (survivors.has(t)) this.scopes.at(-1)?.add(t);
      else t.dispose();
    }
  }

  /** Starts recording ops for backward; returns the tape. */
  startTape(): Tape {
    this.tape = new Tape();
    return this.tape;
  }

  /** Backward from `output` (a scalar unless `seed` is given) and ends the tape. */
  backward(output: Tensor, seed?: Tensor): void {
    const tape = this.tape;
    if (!tape) throw new Error("backward: no tape is recording (call startTape first)");
    this.tape = null;
    const h = requireHooks();
    let s = seed;
    if (!s) {
      if (output.size !== 1) {
        throw new Error(
          `backward: output ${shapeString(output.shape)} is not a scalar; pass a seed`,
        );
      }
      s = this.full(output.shape, 1, "seed");
    }
    runBackward(tape, output, s, h.accumulate, h.clone);
  }

  /** Records an op on the tape when one is active and any input needs a gradient. */
  record(node: TapeNode): Tensor {
    if (this.tape && node.inputs.some((t) => t.requiresGrad)) {
      node.output.requiresGrad = true;
      this.tape.record(node);
    }
    return node.output;
  }

  /** Runs fn without recording ops. */
  noGrad<T>(fn: () => T): T {
    const saved = this.tape;
    this.tape = null;
    try {
      return fn();
    } finally {
      this.tape = saved;
    }
  }

  destroy(): void {
    this.gpu.destroy();
  }
}

function requireHooks(): EngineHooks {
  if (!hooks) throw new Error("the ops layer is not loaded (import src/tensor/ops/mod.ts)");
  return hooks;
}

function toHost(data: HostArray | number[], dtype: DType): HostArray {
  if (Array.isArray(data)) {
    return dtype === "f32"
      ? new Float32Array(data)
      : dtype === "i32"
      ? new Int32Array(data)
      : new Uint32Array(data);
  }
  const want = dtype === "f32" ? Float32Array : dtype === "i32" ? Int32Array : Uint32Array;
  if (!(data instanceof want)) {
    throw new Error(`data is ${data.constructor.name}, dtype is ${dtype}`);
  }
  return data;
}

function collectTensors(value: unknown, out = new Set<Tensor>()): Set<Tensor> {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) { for (const v of value) collectTensors(v, out); }
  else if (value && typeof value === "object" && !(ArrayBuffer.isView(value))) {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
  return out;
}
