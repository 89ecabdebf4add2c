/**
 * Every kernel's TypeScript declaration against the WGSL it compiles: the fields of its
 * `struct Params` (names and types, in order) and its `@group(0) @binding(N)` variables (the
 * Params uniform at 0, then the buffers numbered 1, 2, … in the declared order, as Gpu.dispatch
 * binds them: storage, or a uniform the caller fills, like the tiled GRU kernels' weights).
 * Every file in shaders/ must be part of some declared kernel's source.
 */
import assert from "node:assert/strict";
import type { Gpu } from "../../src/gpu/gpu.ts";
import "../../src/tensor/ops/mod.ts";
import "../../src/tensor/ops/attention_cache.ts";
import "../../src/tensor/ops/rmsnorm.ts";
import "../../src/tensor/ops/rope.ts";
import "../../src/tensor/ops/swiglu.ts";
import "../../src/loss/ce.ts";
import "../../src/loss/cce.ts";
import "../../src/loss/negatives.ts";
import "../../src/loss/pair_losses.ts";
import "../../src/sparse/mod.ts";
import "../../src/prune/mod.ts";
import "../../src/models/decode.ts";
import "../../src/finetune/mod.ts";
import "../../src/train/clip.ts";
import "../../src/train/optim.ts";
import "../../src/train/ranking.ts";
import { declaredKernels, Kernel, type UniformType } from "../../src/tensor/kernel.ts";

const SHADERS = new URL("../../shaders/", import.meta.url);

interface ParsedBinding {
  binding: number;
  space: string;
  name: string;
  type: string;
}

interface ParsedShader {
  params: [string, string][] | null;
  bindings: ParsedBinding[];
}

/** Params fields and binding variables of WGSL source, comments removed. */
function parseShader(source: string): ParsedShader {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  const structs = [...code.matchAll(/struct\s+Params\s*\{([^}]*)\}/g)];
  assert.ok(structs.length <= 1, "more than one struct Params");
  const params = structs.length === 0 ? null : structs[0][1]
    .split(",")
    .map((f) => f.trim())
    .filter((f) => f.length > 0)
    .map((f) => {
      const m = f.match(/^(\w+)\s*:\s*(\w+)$/);
      assert.ok(m, `cannot read the Params field "${f}"`);
      return [m[1], m[2]] as [string, string];
    });
  const bindings = [
    ...code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var(?:<([^>]*)>)?\s+(\w+)\s*:\s*([^;]+);/g),
  ].map((m) => ({
    binding: Number(m[1]),
    space: (m[2] ?? "").split(",")[0].trim(),
    name: m[3],
    type: m[4].trim(),
  }));
  return { params, bindings };
}

/** Why a declaration and its source disagree, or null. */
function mismatch(k: Kernel<string, string>): string | null {
  const parsed = parseShader(k.source);
  const declared = k.params.map(([n, t]) => `${n}: ${t}`).join(", ");
  const found = (parsed.params ?? []).map(([n, t]) => `${n}: ${t}`).join(", ");
  if (declared !== found) return `params are {${declared}}, the shader's {${found}}`;
  const other = parsed.bindings.find((b) => b.space !== "uniform" && b.space !== "storage");
  if (other) return `binding ${other.binding} (${other.name}) is neither a uniform nor storage`;
  const params = parsed.bindings.filter((b) => b.space === "uniform" && b.type === "Params");
  if (parsed.params) {
    if (params.length !== 1 || params[0].binding !== 0) {
      return "struct Params is not bound as var<uniform> at binding 0";
    }
  } else if (params.length > 0) {
    return "Params is bound but the shader has no struct Params";
  }
  // Several variables may view one binding with different element types: the first names it.
  const byNumber = new Map<number, string>();
  for (const b of parsed.bindings) {
    if (b.type !== "Params" && !byNumber.has(b.binding)) byNumber.set(b.binding, b.name);
  }
  const first = parsed.params ? 1 : 0;
  const numbers = [...byNumber.keys()].sort((a, b) => a - b);
  const shader = numbers.map((n) => `${n} ${byNumber.get(n)}`).join(", ");
  const want = k.buffers.map((name, i) => `${first + i} ${name}`).join(", ");
  if (shader !== want) return `buffers are [${want}], the shader's [${shader}]`;
  return null;
}

Deno.test("every kernel declaration matches its shader's Params and bindings", () => {
  const kernels = declaredKernels();
  assert.ok(kernels.length > 20, `only ${kernels.length} kernels declared`);
  const problems = kernels.flatMap((k) => {
    const why = mismatch(k);
    return why ? [`${k.name}: ${why}`] : [];
  });
  assert.deepEqual(problems, []);
});

Deno.test("every shader file is part of a declared kernel", async () => {
  const sources = declaredKernels().map((k) => k.source);
  const missing: string[] = [];
  for await (const entry of Deno.readDir(SHADERS)) {
    if (!entry.name.endsWith(".wgsl")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, SHADERS));
    if (!sources.some((s) => s.includes(text))) missing.push(entry.name);
  }
  assert.deepEqual(missing, [], "declare these shaders' kernels (and import their modules here)");
});

/** An unregistered kernel over `source`, to feed `mismatch` wrong declarations. */
function declared(
  source: string,
  params: Record<string, UniformType> | undefined,
  buffers: string[],
) {
  return new Kernel({ name: "test", source, params, buffers });
}

Deno.test("the declaration test finds a misdeclared field, binding or hole", () => {
  const shader = `
struct Params { n: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// A view of x's binding as bits: the first variable names it.
@group(0) @binding(1) var<storage, read> bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;`;
  const good = declared(shader, { n: "u32", scale: "f32" }, ["x", "y"]);
  assert.equal(mismatch(good), null);
  assert.match(
    mismatch(declared(shader, { n: "u32", scale: "u32" }, ["x", "y"]))!,
    /params are \{n: u32, scale: u32\}, the shader's \{n: u32, scale: f32\}/,
  );
  assert.match(
    mismatch(declared(shader, { scale: "f32", n: "u32" }, ["x", "y"]))!,
    /params are/,
  );
  assert.match(
    mismatch(declared(shader, { n: "u32", scale: "f32" }, ["y", "x"]))!,
    /buffers are \[1 y, 2 x\], the shader's \[1 x, 2 y\]/,
  );
  assert.match(
    mismatch(declared(shader, { n: "u32", scale: "f32" }, ["x"]))!,
    /buffers are \[1 x\]/,
  );
  const hole = shader.replace("@binding(2)", "@binding(3)");
  assert.match(
    mismatch(declared(hole, { n: "u32", scale: "f32" }, ["x", "y"]))!,
    /the shader's \[1 x, 3 y\]/,
  );
  const noParams = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;";
  assert.equal(mismatch(declared(noParams, undefined, ["out"])), null);
  // A uniform buffer beside Params is one of the buffers, in its binding's place.
  const withUniform = `${shader}\n@group(0) @binding(3) var<uniform> w: array<vec4<f32>, 4>;`;
  const params = { n: "u32", scale: "f32" } as const;
  assert.equal(mismatch(declared(withUniform, params, ["x", "y", "w"])), null);
  assert.match(
    mismatch(declared(withUniform, params, ["x", "y"]))!,
    /the shader's \[1 x, 2 y, 3 w\]/,
  );
  const paramsAt1 = shader.replace("@binding(0) var<uniform> p", "@binding(4) var<uniform> p");
  assert.match(mismatch(declared(paramsAt1, params, ["x", "y"]))!, /not bound .* at binding 0/);
});

/** Dispatches recorded instead of run. */
function recorder() {
  const calls: Parameters<Gpu["dispatch"]>[0][] = [];
  const gpu = { dispatch: (d: Parameters<Gpu["dispatch"]>[0]) => calls.push(d) } as unknown as Gpu;
  return { gpu, calls };
}

// Built with the constructor, not declareKernel: it stays out of the list the tests above check.
const probe = new Kernel({
  name: "probe",
  source: "// never compiled: dispatches go to a recorder",
  params: { rows: "u32", shift: "i32", scale: "f32" },
  buffers: ["a", "b", "c", "d"],
});

Deno.test("a declaration packs named parameters and numbers named buffers", () => {
  const { gpu, calls } = recorder();
  const [a, c] = [{}, {}] as never[];
  probe.dispatch(gpu, {
    entry: "half",
    params: { scale: 0.5, rows: 7, shift: -3 },
    buffers: { c, a },
    workgroups: [2],
  });
  const d = calls[0];
  assert.equal(d.kernel, "probe");
  assert.equal(d.shader, probe.source);
  assert.equal(d.entry, "half");
  const view = new DataView(d.params as ArrayBuffer);
  assert.equal(view.byteLength, 16);
  assert.deepEqual([view.getUint32(0, true), view.getInt32(4, true)], [7, -3]);
  assert.equal(view.getFloat32(8, true), 0.5);
  // a and c at bindings 1 and 3: Gpu.dispatch skips the hole left by b, and d trails off.
  assert.deepEqual(d.bindings, [a, null, c]);
});

Deno.test("a declaration refuses missing, unknown and out-of-range names, naming the kernel", () => {
  const { gpu } = recorder();
  const call = { params: { rows: 1, shift: 0, scale: 1 }, buffers: {}, workgroups: [1] } as const;
  const run = (change: Record<string, unknown>) => () =>
    probe.dispatch(gpu, { ...call, label: "probe here", ...change } as never);
  assert.throws(
    run({ params: { rows: 1, scale: 1 } }),
    /kernel probe here \(probe\): parameter shift is missing/,
  );
  assert.throws(
    run({ params: { ...call.params, cols: 2 } }),
    /kernel probe here \(probe\): unknown parameter cols/,
  );
  assert.throws(run({ buffers: { e: {} } }), /kernel probe here \(probe\): unknown buffer e/);
  assert.throws(
    run({ params: { ...call.params, rows: -1 } }),
    /kernel probe here \(probe\): parameter rows \(u32\) must be an integer in \[0, 2\^32\), got -1/,
  );
  assert.throws(
    run({ params: { ...call.params, shift: 2 ** 31 } }),
    /parameter shift \(i32\) must be an integer in \[-2\^31, 2\^31\), got 2147483648/,
  );
  assert.throws(run({ params: { ...call.params, rows: 1.5 } }), /rows \(u32\).*got 1.5/);
});
