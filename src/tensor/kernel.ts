/**
 * Kernel declarations, and helpers shared by every op: grids, binding windows for big tensors.
 *
 * A kernel is declared once, beside the code that runs it: its composed WGSL source, the fields
 * of its `struct Params` in order and its storage bindings in order. Call sites name their
 * parameters and buffers; the declaration packs the uniform and numbers the bindings the way
 * Gpu.dispatch binds them (the uniform at 0, then storage 1, 2, …). The declarations are checked
 * against every shader's text by tests/tensor/kernel_declarations_test.ts.
 */
import { type Binding, type Gpu, grid2d } from "../gpu/gpu.ts";
import type { Engine } from "./engine.ts";
import type { Tensor } from "./tensor.ts";
import { ShapeError, shapeString } from "./tensor.ts";

/** The WGSL scalar types of uniform fields: 4 bytes each. */
export type UniformType = "u32" | "i32" | "f32";

export interface KernelDeclaration<P extends string, B extends string> {
  /** Names the kernel in errors and, unless a call gives a label, in profiles. */
  name: string;
  /** The WGSL that is compiled: the shader file with the pieces it is composed with. */
  source: string;
  /** The fields of `struct Params`, in struct order (omitted when the shader has none). */
  params?: { readonly [K in P]: UniformType };
  /** Every storage binding of the source, in binding order. */
  buffers: readonly B[];
}

export interface KernelCall<P extends string, B extends string> {
  /** Entry point; "main" by default. */
  entry?: string;
  /** The name in errors and profiles, when one declaration runs as several ops. */
  label?: string;
  constants?: Record<string, number>;
  /** Every uniform field by name. */
  params: { readonly [K in P]: number };
  /** The buffers the entry point uses, by name; the others are left out. */
  buffers: { readonly [K in B]?: Binding };
  workgroups: [number, number?, number?];
}

const declared: Kernel<string, string>[] = [];

/** A declared kernel: packs named parameters and binds named buffers for Gpu.dispatch. */
export class Kernel<P extends string, B extends string> {
  readonly name: string;
  readonly source: string;
  readonly params: readonly (readonly [P, UniformType])[];
  readonly buffers: readonly B[];
  /** A buffer's place among the storage bindings (Gpu.dispatch numbers them after the uniform). */
  private readonly slot = new Map<string, number>();
  private readonly packed: DataView<ArrayBuffer>;

  constructor(decl: KernelDeclaration<P, B>) {
    this.name = decl.name;
    this.source = decl.source;
    this.params = decl.params ? Object.entries(decl.params) as [P, UniformType][] : [];
    this.buffers = decl.buffers;
    decl.buffers.forEach((b, i) => {
      if (this.slot.has(b)) throw new Error(`kernel ${this.name}: buffer ${b} declared twice`);
      this.slot.set(b, i);
    });
    // WGSL rounds a uniform struct of 4-byte fields up to 16 bytes.
    const uniformBytes = Math.max(16, Math.ceil((this.params.length * 4) / 16) * 16);
    this.packed = new DataView(new ArrayBuffer(uniformBytes));
  }

  /** Records one dispatch of `call.entry` (see Gpu.dispatch). */
  dispatch(gpu: Gpu, call: KernelCall<P, B>): void {
    const label = call.label ?? this.name;
    const who = label === this.name ? label : `${label} (${this.name})`;
    gpu.dispatch({
      kernel: label,
      shader: this.source,
      entry: call.entry,
      constants: call.constants,
      params: this.params.length > 0 ? this.pack(who, call.params) : undefined,
      bindings: this.bind(who, call.buffers),
      workgroups: call.workgroups,
    });
  }

  /**
   * Packs into one buffer per kernel, rewritten at every call: Gpu.dispatch copies the parameters
   * into its arena before it returns, and a fresh ArrayBuffer per dispatch was garbage to collect.
   */
  private pack(who: string, values: { readonly [K in P]: number }): ArrayBuffer {
    const view = this.packed;
    this.params.forEach(([name, type], i) => {
      const v = values[name];
      if (typeof v !== "number") throw new Error(`kernel ${who}: parameter ${name} is missing`);
      if (type === "f32") {
        view.setFloat32(i * 4, v, true);
        return;
      }
      const u32 = type === "u32";
      if (
        !(Number.isInteger(v) && (u32 ? v >= 0 && v <= 0xffffffff : v >= -(2 ** 31) && v < 2 ** 31))
      ) {
        throw new RangeError(
          `kernel ${who}: parameter ${name} (${type}) must be an integer in ${
            u32 ? "[0, 2^32)" : "[-2^31, 2^31)"
          }, got ${v}`,
        );
      }
      if (u32) view.setUint32(i * 4, v, true);
      else view.setInt32(i * 4, v, true);
    });
    if (Object.keys(values).length > this.params.length) {
      const unknown = Object.keys(values).filter((k) => !this.params.some(([n]) => n === k));
      throw new Error(`kernel ${who}: unknown parameter ${unknown.join(", ")}`);
    }
    return view.buffer;
  }

  /** Storage bindings in order, null where the entry point uses no buffer of that slot. */
  private bind(who: string, buffers: { readonly [K in B]?: Binding }): (Binding | null)[] {
    const out: (Binding | null)[] = [];
    for (const [name, b] of Object.entries(buffers) as [string, Binding | undefined][]) {
      const at = this.slot.get(name);
      if (at === undefined) throw new Error(`kernel ${who}: unknown buffer ${name}`);
      if (!b) continue;
      while (out.length <= at) out.push(null);
      out[at] = b;
    }
    return out;
  }
}

/** Declares a kernel and registers it for the declaration test. */
export function declareKernel<P extends string = never, B extends string = never>(
  decl: KernelDeclaration<P, B>,
): Kernel<P, B> {
  const k = new Kernel(decl);
  declared.push(k as unknown as Kernel<string, string>);
  return k;
}

/**
 * How many pieces a software adapter splits work into (row chunks, reduction slices): about 16 a
 * core. llvmpipe runs workgroups on its few threads with a cost for each besides its work, so
 * more pieces only add that cost, and fewer leave a core idle at the end.
 */
export function softwarePieces(): number {
  return 16 * navigator.hardwareConcurrency;
}

/** 0, 1, …, n − 1: the slots, units or rows a generated kernel source is unrolled over. */
export const range = (n: number): number[] => [...Array(n).keys()];

/**
 * Kernels whose source is generated per key (a slot count, a tile shape…), each built on first
 * use. The `registered` keys' kernels are declared for the declaration check; the others are
 * generated alike.
 */
export function generatedKernels<K>(
  declaration: (key: K) => KernelDeclaration<string, string>,
  name: (key: K) => string,
  registered: readonly K[],
): (key: K) => Kernel<string, string> {
  const made = new Map<string, Kernel<string, string>>();
  for (const key of registered) made.set(name(key), declareKernel(declaration(key)));
  return (key) => {
    let k = made.get(name(key));
    if (!k) made.set(name(key), k = new Kernel(declaration(key)));
    return k;
  };
}

/** Every kernel declared by the modules loaded so far. */
export function declaredKernels(): readonly Kernel<string, string>[] {
  return declared;
}

/** Workgroups for `n` items at `perGroup` items each, folded into 2-D past the grid limit. */
export function groupsFor(engine: Engine, n: number, perGroup = 256): [number, number] {
  return grid2d(Math.ceil(n / perGroup), engine.gpu.limits.maxComputeWorkgroupsPerDimension);
}

export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    throw new ShapeError(op, `shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  }
}

export function assertDType(op: string, t: Tensor, dtype: string): void {
  if (t.dtype !== dtype) {
    throw new ShapeError(op, `expects ${dtype}, got ${t.dtype} ${shapeString(t.shape)}`);
  }
}

/** A contiguous run of rows [row, row + rows) that fits one storage binding. */
export interface RowWindow {
  row: number;
  rows: number;
  offset: number;
  size: number;
}

/**
 * Splits a row-major [rows, rowBytes] buffer into windows under the binding limit whose byte
 * offsets respect the adapter's storage alignment, so a kernel can bind one window at a time.
 */
export function rowWindows(engine: Engine, rows: number, rowBytes: number): RowWindow[] {
  const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
    engine.gpu.limits;
  if (rows * rowBytes <= maxBind) {
    return [{ row: 0, rows, offset: 0, size: Math.max(rows * rowBytes, 4) }];
  }
  let step = Math.floor(maxBind / rowBytes);
  const rowsPerAlign = align / gcd(align, rowBytes);
  step -= step % rowsPerAlign;
  if (step <= 0) throw new Error(`a row of ${rowBytes} bytes does not fit one storage binding`);
  const out: RowWindow[] = [];
  for (let row = 0; row < rows; row += step) {
    const n = Math.min(step, rows - row);
    out.push({ row, rows: n, offset: row * rowBytes, size: n * rowBytes });
  }
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
