/**
 * The GPU side of the negative generator (src/data/samplers.ts has the host side, bit for bit):
 * the WGSL negative_id for the fused CE- kernels, its alias-table buffer, and a kernel that writes
 * the draws out for tests.
 */
import negativesShader from "../../shaders/negatives.wgsl" with { type: "text" };
import fillShader from "../../shaders/negatives_fill.wgsl" with { type: "text" };
import {
  type AliasTable,
  assertNegativeSpec,
  NEGATIVE_KIND_CODES,
  type NegativeSpec,
} from "../data/samplers.ts";
import type { Engine } from "../tensor/engine.ts";
import { groupsFor, params, rowWindows } from "../tensor/kernel.ts";
import { withRandom } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** A shader with random.wgsl and negatives.wgsl in front: it may call negative_id. */
export function withNegatives(shader: string): string {
  return withRandom(`${negativesShader}\n${shader}`);
}

/** The kernel's NegativeSpec fields (kind, k, items, seed) in uniform order. */
export function negativeParams(spec: NegativeSpec): number[] {
  return [NEGATIVE_KIND_CODES[spec.kind], spec.k, spec.items, spec.seed];
}

const uploadedTables = new WeakMap<AliasTable, WeakMap<Engine, Tensor>>();
const placeholders = new WeakMap<Engine, Tensor>();

/**
 * The buffer for negative_id's binding 1: the spec's alias table as u32 [items, 2]
 * (keep-probability bits, alias), uploaded on first use and kept for the engine's life; a
 * one-cell placeholder for kinds that do not read it.
 */
export function negativeAliasBuffer(engine: Engine, spec: NegativeSpec): Tensor {
  const table = spec.alias;
  if (spec.kind !== "popularity" || !table) {
    return cached(
      placeholders,
      engine,
      () => packAlias(engine, { prob: new Float32Array(1), alias: new Int32Array(1) }),
    );
  }
  const bytes = table.prob.length * 8;
  if (bytes > engine.gpu.limits.maxStorageBufferBindingSize) {
    throw new RangeError(
      `popularity negatives: the alias table of ${table.prob.length} items (${bytes} bytes) ` +
        `exceeds one storage binding (${engine.gpu.limits.maxStorageBufferBindingSize} bytes)`,
    );
  }
  let perEngine = uploadedTables.get(table);
  if (!perEngine) uploadedTables.set(table, perEngine = new WeakMap());
  return cached(perEngine, engine, () => packAlias(engine, table));
}

function cached(map: WeakMap<Engine, Tensor>, engine: Engine, make: () => Tensor): Tensor {
  let t = map.get(engine);
  if (!t || t.isDisposed) {
    t = make();
    engine.keep(t);
    map.set(engine, t);
  }
  return t;
}

function packAlias(engine: Engine, table: AliasTable): Tensor {
  const n = table.prob.length;
  const cells = new Uint32Array(2 * n);
  const probBits = new Uint32Array(table.prob.buffer, table.prob.byteOffset, n);
  for (let c = 0; c < n; c++) {
    cells[2 * c] = probBits[c];
    cells[2 * c + 1] = table.alias[c];
  }
  return engine.tensor(cells, [n, 2], "u32", "negative alias table");
}

const fill = withNegatives(fillShader);

/**
 * The negatives the fused kernels draw for `positions` positions, drawn on the GPU: i32
 * [positions, k], or [k] when shared. For tests: the fused losses never store their negatives.
 */
export function drawNegativesGpu(engine: Engine, spec: NegativeSpec, positions: number): Tensor {
  assertNegativeSpec("drawNegativesGpu", spec, positions);
  const shape = spec.kind === "shared" ? [spec.k] : [positions, spec.k];
  const out = engine.empty(shape, "i32", "negatives");
  if (out.size === 0) return out;
  const alias = negativeAliasBuffer(engine, spec);
  for (const w of rowWindows(engine, out.size, 4)) {
    engine.gpu.dispatch({
      kernel: "draw negatives",
      shader: fill,
      params: params(w.rows, w.row, ...negativeParams(spec)),
      bindings: [alias.storage, { alloc: out.storage, offset: w.offset, size: w.size }],
      workgroups: groupsFor(engine, w.rows),
    });
  }
  return out;
}
