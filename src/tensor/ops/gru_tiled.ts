/**
 * The WGSL functions of the tiled GRU kernels (shaders/gru_tiled_*.wgsl), generated unrolled over
 * an invocation's tile of units × sequences: llvmpipe keeps named variables in registers, where
 * an array indexed in a loop would live in memory and be loaded lane by lane.
 */
import { range } from "../kernel.ts";

/** A tile: `units` hidden units (a multiple of 4) of `seq` sequences (a multiple of 4). */
export interface GruTile {
  seq: number;
  units: number;
}

const GATES = ["r", "z", "n"] as const;
const XYZW = ["x", "y", "z", "w"] as const;

/** Accumulator of gate g, unit u, sequences 4·s4 .. +3. */
const acc = (g: string, u: number, s4: number) => `acc_${g}_${u}_${s4}`;
/** The own state of unit u, sequences 4·s4 .. +3. */
const own = (u: number, s4: number) => `hown_${u}_${s4}`;
/** The vec4 over units 4q .. 4q+3 of sequence s, from per-unit vec4s over sequences. */
const acrossUnits = (name: (u: number, s4: number) => string, q: number, s: number) =>
  `vec4<f32>(${
    range(4).map((i) => `${name(4 * q + i, Math.floor(s / 4))}.${XYZW[s % 4]}`).join(", ")
  })`;

/** Where a tiled kernel reads W_hh [3H, H] from. */
export type WeightsBinding = "uniform" | "storage";

/**
 * W_hh is read from a uniform copy where it fits the adapter's uniform binding (64 KiB on every
 * WebGPU adapter: H ≤ 73). llvmpipe gathers storage and workgroup loads with per-lane indices in
 * a loop over the lanes whose temporaries live in memory once a kernel has a barrier (it then runs
 * as a coroutine), uniform loads as plain per-lane loads: from a uniform copy the forward's 24
 * weight vec4 per k4 cost ~2.5× less (the CoLES forward 28.5 → 22 ms of CPU time, the backward
 * 35.8 → 29.2).
 */
export function weightsBinding(hidden: number, maxUniformBytes: number): WeightsBinding {
  return 3 * hidden * hidden * 4 <= maxUniformBytes ? "uniform" : "storage";
}

/** The declaration of w_hh at a binding. */
function weightsDeclaration(binding: number, weights: WeightsBinding): string {
  const type = weights === "uniform"
    ? "uniform> w_hh: array<vec4<f32>, 3u * H * H4>"
    : "storage, read> w_hh: array<vec4<f32>>";
  return `@group(0) @binding(${binding}) var<${type};`;
}

/**
 * How the tiled backward forms W_hhᵀ · dgh. "partial sums": an invocation multiplies the 3·UNITS
 * gate gradients it computed (still in registers) by their rows of W_hh for all H units; the
 * LANES partial sums meet in workgroup memory. Per step an invocation then stores H·SEQ/4 vec4
 * there and loads as many, where sharing the gradients ("shared gradients": every invocation sums
 * all 3H gate rows for its units) stores 3·UNITS·SEQ/4 and loads 3H·SEQ/4, since the reduction
 * (3H) is longer than the output (H): at CoLES shapes 256 instead of 432 vec4 (interleaved, the
 * GRU's forward and backward 74.0 → 67.5 ms of CPU time, a CoLES step 99.4 → 92.0), though the
 * kernel compiles in 30–40 s instead of 10–16 where Mesa's shader cache does not hold it yet. The
 * partial sums take LANES·H·SEQ floats of workgroup memory, the shared gradients 3H·SEQ: over the
 * adapter's limit, large H shares the gradients.
 */
export type BackwardProduct = "partial sums" | "shared gradients";

/** The partial sums where their workgroup memory fits the adapter's. */
export function backwardProduct(t: GruTile, hidden: number, maxWorkgroupBytes: number) {
  const lanes = Math.ceil(hidden / t.units);
  return lanes * hidden * t.seq * 4 <= maxWorkgroupBytes ? "partial sums" : "shared gradients";
}

/** The constants every tiled kernel is compiled with. */
export function tiledConstants(t: GruTile, hidden: number): string {
  return [
    `const SEQ = ${t.seq}u;`,
    `const UNITS = ${t.units}u;`,
    `const LANES = ${Math.ceil(hidden / t.units)}u;`,
    `const H = ${hidden}u;`,
    `const H4 = ${hidden / 4}u;`,
    "",
  ].join("\n");
}

/** The bias a gate's accumulator starts from: b_hh, plus b_ih for r and z (n keeps them apart). */
const bias = (g: string, u: number) => `bias_${g}_${u}`;
/** b_ih of gate n for units 4q .. 4q+3. */
const biasN = (q: number) => `bias_in_${q}`;

/** The tile's biases, loaded once into private registers. */
function forwardBiases(t: GruTile): string[] {
  const lines: string[] = [];
  for (const u of range(t.units)) {
    for (const g of GATES) lines.push(`var<private> ${bias(g, u)}: f32;`);
  }
  for (const q of range(t.units / 4)) lines.push(`var<private> ${biasN(q)}: vec4<f32>;`);
  lines.push("fn load_bias(j0: u32) {");
  for (const u of range(t.units)) {
    lines.push(`  let unit${u} = min(j0 + ${u}u, H - 1u);`);
    GATES.forEach((g, gi) => {
      const ih = g === "n" ? "" : ` + b_ih[${gi}u * H + unit${u}]`;
      lines.push(`  ${bias(g, u)} = b_hh[${gi}u * H + unit${u}]${ih};`);
    });
  }
  for (const q of range(t.units / 4)) {
    const units = range(4).map((i) => `b_ih[2u * H + min(j0 + ${4 * q + i}u, H - 1u)]`);
    lines.push(`  ${biasN(q)} = vec4<f32>(${units.join(", ")});`);
  }
  lines.push("}");
  return lines;
}

/** Private accumulators and states, and the forward's product functions. */
function forwardProduct(t: GruTile): string[] {
  const units = range(t.units);
  const seqs = range(t.seq / 4);
  const lines: string[] = [];
  for (const u of units) {
    for (const s4 of seqs) {
      for (const g of GATES) lines.push(`var<private> ${acc(g, u, s4)}: vec4<f32>;`);
      lines.push(`var<private> ${own(u, s4)}: vec4<f32>;`);
    }
  }
  lines.push("fn product_init() {");
  for (const u of units) {
    for (const g of GATES) {
      for (const s4 of seqs) lines.push(`  ${acc(g, u, s4)} = vec4<f32>(${bias(g, u)});`);
    }
  }
  lines.push("}", "fn product_k4(k4: u32, j0: u32) {");
  for (let c = 0; c < 4; c++) {
    for (const s4 of seqs) {
      lines.push(`  let h${c}_${s4} = h_sh[(4u * k4 + ${c}u) * SEQ4 + ${s4}u];`);
    }
  }
  for (const u of units) {
    lines.push(`  let unit${u} = min(j0 + ${u}u, H - 1u);`);
    GATES.forEach((g, gi) =>
      lines.push(`  let w${g}${u} = w_hh[(${gi}u * H + unit${u}) * H4 + k4];`)
    );
    for (const s4 of seqs) {
      for (const [c, x] of XYZW.entries()) {
        for (const g of GATES) {
          const a = acc(g, u, s4);
          lines.push(`  ${a} = fma(vec4<f32>(w${g}${u}.${x}), h${c}_${s4}, ${a});`);
        }
      }
    }
  }
  lines.push("}");
  return lines;
}

/** The forward's gates, stores and state update for each (4 units, sequence) of the tile. */
function forwardUpdate(t: GruTile): string[] {
  const lines = ["fn step_update(t: u32, b0: u32, j0: u32) {"];
  for (const q of range(t.units / 4)) {
    for (const s of range(t.seq)) {
      const s4 = Math.floor(s / 4);
      const x = XYZW[s % 4];
      lines.push(
        `  if (j0 + ${4 * q}u < H && b0 + ${s}u < p.batch) {`,
        `    let row = state_at[${s}] * p.steps + t;`,
        `    let h_old = ${acrossUnits(own, q, s)};`,
        `    var h_new = h_old;`,
        `    if (t < len[${s}]) {`,
        `      let g = (gx_at[${s}] + t) * 3u * H4 + j0 / 4u + ${q}u;`,
        `      let saved = saved_at[${s}] + t;`,
        `      let hn = ${acrossUnits((u, v) => acc("n", u, v), q, s)};`,
        `      let r = stable_sigmoid(gx[g] + ${acrossUnits((u, v) => acc("r", u, v), q, s)});`,
        `      let z = stable_sigmoid(gx[g + H4] + ${
          acrossUnits((u, v) => acc("z", u, v), q, s)
        });`,
        `      let n = tanh(gx[g + 2u * H4] + ${biasN(q)} + r * hn);`,
        `      h_new = (1.0 - z) * n + z * h_old;`,
        `      let w = saved * 4u * H4 + j0 / 4u + ${q}u;`,
        `      work[w] = r;`,
        `      work[w + H4] = z;`,
        `      work[w + 2u * H4] = n;`,
        `      work[w + 3u * H4] = hn;`,
        ...range(4).map((i) => `      ${own(4 * q + i, s4)}.${x} = h_new[${i}];`),
        `      hprev[saved * H4 + j0 / 4u + ${q}u] = h_old;`,
        `    }`,
        `    hs[row * H4 + j0 / 4u + ${q}u] = h_new;`,
        `  }`,
      );
    }
  }
  lines.push("}", "fn store_states(t: u32, b0: u32, j0: u32) {");
  for (const q of range(t.units / 4)) {
    for (const s of range(t.seq)) {
      lines.push(
        `  if (j0 + ${4 * q}u < H && b0 + ${s}u < p.batch) {`,
        `    hs[(state_at[${s}] * p.steps + t) * H4 + j0 / 4u + ${q}u] = ${
          acrossUnits(own, q, s)
        };`,
        `  }`,
      );
    }
  }
  lines.push("}");
  return lines;
}

/** Moving the own states from and to workgroup memory. */
function stateMoves(t: GruTile): string[] {
  const lines = ["fn load_state(j0: u32) {"];
  for (const u of range(t.units)) {
    for (const s4 of range(t.seq / 4)) {
      lines.push(`  ${own(u, s4)} = h_sh[min(j0 + ${u}u, H - 1u) * SEQ4 + ${s4}u];`);
    }
  }
  lines.push("}", "fn share_state(j0: u32) {");
  for (const u of range(t.units)) {
    lines.push(`  if (j0 + ${u}u < H) {`);
    for (const s4 of range(t.seq / 4)) {
      lines.push(`    h_sh[(j0 + ${u}u) * SEQ4 + ${s4}u] = ${own(u, s4)};`);
    }
    lines.push("  }");
  }
  lines.push("}");
  return lines;
}

/** The declaration of w_hh and the functions gru_tiled_forward.wgsl calls. */
export function tiledForwardFunctions(t: GruTile, weights: WeightsBinding): string {
  return [
    weightsDeclaration(2, weights),
    ...forwardBiases(t),
    ...forwardProduct(t),
    ...forwardUpdate(t),
    ...stateMoves(t),
    "",
  ].join("\n");
}

/** Gradient names of the backward: own dh, accumulators, gate gradients (vec4 over sequences). */
const dh = (u: number, s4: number) => `dh_${u}_${s4}`;
const bacc = (u: number, s4: number) => `bacc_${u}_${s4}`;
const gg = (g: string, u: number, s4: number) => `g${g}_${u}_${s4}`;

/** The bias gradients a tile sums over its sequences and steps: r, z, n of b_ih, then n of b_hh. */
const BIAS_GRADS = ["r", "z", "n", "hn"] as const;
/** Bias gradient g of units 4q .. 4q+3, summed over the tile's sequences and the pass's steps. */
const dbias = (g: string, q: number) => `dbias_${g}_${q}`;

/**
 * The tile's bias gradients, added to its workgroup's row of `dbias` [groups, 6H] (b_ih's r, z, n,
 * then b_hh's r, z, n; the r and z gradients of the two biases are equal).
 */
function biasGradStores(t: GruTile): string[] {
  const lines: string[] = [];
  for (const q of range(t.units / 4)) {
    for (const g of BIAS_GRADS) lines.push(`var<private> ${dbias(g, q)}: vec4<f32>;`);
  }
  lines.push("fn store_bias_grads(group: u32, j0: u32) {");
  const columns: [number, string][] = [[0, "r"], [1, "z"], [2, "n"], [3, "r"], [4, "z"], [5, "hn"]];
  for (const q of range(t.units / 4)) {
    lines.push(`  if (j0 + ${4 * q}u < H) {`);
    for (const [c, g] of columns) {
      lines.push(`    dbias[(group * 6u + ${c}u) * H4 + j0 / 4u + ${q}u] += ${dbias(g, q)};`);
    }
    lines.push("  }");
  }
  lines.push("}");
  return lines;
}

/** The backward's carried gradient, moved from and to `carry`. */
function carryMoves(t: GruTile): string[] {
  const lines: string[] = [];
  for (const u of range(t.units)) {
    for (const s4 of range(t.seq / 4)) {
      lines.push(
        `var<private> ${dh(u, s4)}: vec4<f32>;`,
        `var<private> ${bacc(u, s4)}: vec4<f32>;`,
      );
      for (const g of GATES) lines.push(`var<private> ${gg(g, u, s4)}: vec4<f32>;`);
    }
  }
  const load = ["fn load_carry(b0: u32, j0: u32) {"];
  const store = ["fn store_carry(b0: u32, j0: u32) {"];
  for (const q of range(t.units / 4)) {
    for (const s of range(t.seq)) {
      const at = `carry[(b0 + ${s}u) * H4 + j0 / 4u + ${q}u]`;
      const guard = `  if (j0 + ${4 * q}u < H && b0 + ${s}u < p.batch) {`;
      load.push(guard, `    let v = ${at};`);
      range(4).forEach((i) =>
        load.push(`    ${dh(4 * q + i, Math.floor(s / 4))}.${XYZW[s % 4]} = v[${i}];`)
      );
      load.push("  }");
      store.push(guard, `    ${at} = ${acrossUnits(dh, q, s)};`, "  }");
    }
  }
  return [...lines, ...load, "}", ...store, "}"];
}

/** Step tt's gate gradients for each (4 units, sequence) of the tile, and dh ⊙ z. */
function backwardUpdate(t: GruTile): string[] {
  const lines = ["fn grad_update(tt: u32, b0: u32, j0: u32) {"];
  for (const u of range(t.units)) {
    for (const s4 of range(t.seq / 4)) {
      for (const g of GATES) lines.push(`  ${gg(g, u, s4)} = vec4<f32>(0.0);`);
    }
  }
  for (const q of range(t.units / 4)) {
    for (const s of range(t.seq)) {
      const s4 = Math.floor(s / 4);
      const x = XYZW[s % 4];
      lines.push(
        `  if (j0 + ${4 * q}u < H && b0 + ${s}u < p.batch) {`,
        `    let d = ${
          acrossUnits(dh, q, s)
        } + dhs[(state_at[${s}] * p.steps + tt) * H4 + j0 / 4u + ${q}u];`,
        `    var ar = vec4<f32>(0.0);`,
        `    var az = ar;`,
        `    var an = ar;`,
        `    var hr = ar;`,
        `    var keep = vec4<f32>(1.0);`,
        `    if (tt < len[${s}]) {`,
        `      let saved = saved_at[${s}] + tt;`,
        `      let w = saved * 4u * H4 + j0 / 4u + ${q}u;`,
        `      let r = work[w];`,
        `      let z = work[w + H4];`,
        `      let n = work[w + 2u * H4];`,
        `      let dz = d * (hprev[saved * H4 + j0 / 4u + ${q}u] - n);`,
        `      an = d * (1.0 - z) * (1.0 - n * n);`,
        `      ar = an * work[w + 3u * H4] * r * (1.0 - r);`,
        `      az = dz * z * (1.0 - z);`,
        `      hr = an * r;`,
        `      keep = z;`,
        `      let g = (gx_at[${s}] + tt) * 3u * H4 + j0 / 4u + ${q}u;`,
        `      dgx[g] = ar;`,
        `      dgx[g + H4] = az;`,
        `      dgx[g + 2u * H4] = an;`,
        `      let gh = saved * 3u * H4 + j0 / 4u + ${q}u;`,
        `      dgh[gh] = ar;`,
        `      dgh[gh + H4] = az;`,
        `      dgh[gh + 2u * H4] = hr;`,
        ...BIAS_GRADS.map((g, i) => `      ${dbias(g, q)} += ${["ar", "az", "an", "hr"][i]};`),
        `    }`,
        `    let dz_keep = d * keep;`,
      );
      for (const i of range(4)) {
        const u = 4 * q + i;
        lines.push(
          `    ${gg("r", u, s4)}.${x} = ar[${i}];`,
          `    ${gg("z", u, s4)}.${x} = az[${i}];`,
          `    ${gg("n", u, s4)}.${x} = hr[${i}];`,
          `    ${dh(u, s4)}.${x} = dz_keep[${i}];`,
        );
      }
      lines.push("  }");
    }
  }
  lines.push("}");
  return lines;
}

/** W_hhᵀ · dgh for the tile's units from shared gate gradients, four gate rows at a time. */
function sharedGradientsProduct(t: GruTile): string[] {
  const pairs: [number, number][] = [];
  for (const u of range(t.units)) for (const s4 of range(t.seq / 4)) pairs.push([u, s4]);
  const lines = ["var<workgroup> dgh_sh: array<vec4<f32>, 3u * H * SEQ4>;"];
  lines.push("fn share_grads(j0: u32) {");
  for (const u of range(t.units)) {
    lines.push(`  if (j0 + ${u}u < H) {`);
    GATES.forEach((g, gi) => {
      for (const s4 of range(t.seq / 4)) {
        lines.push(`    dgh_sh[(${gi}u * H + j0 + ${u}u) * SEQ4 + ${s4}u] = ${gg(g, u, s4)};`);
      }
    });
    lines.push("  }");
  }
  lines.push("}");
  lines.push("fn back_init() {");
  for (const [u, s4] of pairs) lines.push(`  ${bacc(u, s4)} = vec4<f32>(0.0);`);
  lines.push("}", "fn back_i4(i4: u32, j0: u32) {");
  for (let c = 0; c < 4; c++) {
    lines.push(`  let i${c} = 4u * i4 + ${c}u;`);
    for (const s4 of range(t.seq / 4)) {
      lines.push(`  let d${c}_${s4} = dgh_sh[i${c} * SEQ4 + ${s4}u];`);
    }
    for (const q of range(t.units / 4)) {
      lines.push(`  let w${c}_${q} = w_hh[i${c} * H4 + min(j0 / 4u + ${q}u, H4 - 1u)];`);
    }
  }
  for (const [u, s4] of pairs) {
    const a = bacc(u, s4);
    const x = XYZW[u % 4];
    for (let c = 0; c < 4; c++) {
      lines.push(`  ${a} = fma(vec4<f32>(w${c}_${Math.floor(u / 4)}.${x}), d${c}_${s4}, ${a});`);
    }
  }
  lines.push("}", "fn back_finish() {");
  for (const [u, s4] of pairs) lines.push(`  ${dh(u, s4)} += ${bacc(u, s4)};`);
  lines.push(
    "}",
    "fn back_step(live: bool, j0: u32) {",
    "  share_grads(j0);",
    "  workgroupBarrier();",
    "  back_init();",
    "  for (var i4 = 0u; i4 < select(0u, 3u * H4, live); i4++) { back_i4(i4, j0); }",
    "  back_finish();",
    "  workgroupBarrier();",
    "}",
  );
  return lines;
}

/** Partial sums of an output unit quad: units 4q+i (i < 4), sequences 4·s4 .. +3. */
const pacc = (i: number, s4: number) => `pacc_${i}_${s4}`;

/**
 * W_hhᵀ · dgh from the gate gradients each invocation holds ("partial sums", see BackwardProduct):
 * back_partial(q, j0) sums its 3·UNITS gate rows for units 4q .. 4q+3 into part_sh[lane], and
 * after a barrier back_reduce(j0) adds the LANES partial sums of its units to dh.
 */
function partialSumsProduct(t: GruTile): string[] {
  const seqs = range(t.seq / 4);
  const lines = [
    "var<workgroup> part_sh: array<vec4<f32>, LANES * H * SEQ4>;",
    "fn back_partial(q: u32, j0: u32) {",
  ];
  for (const i of range(4)) {
    for (const s4 of seqs) lines.push(`  var ${pacc(i, s4)} = vec4<f32>(0.0);`);
  }
  GATES.forEach((g, gi) => {
    for (const u of range(t.units)) {
      lines.push("  {", `    let w = w_hh[(${gi}u * H + min(j0 + ${u}u, H - 1u)) * H4 + q];`);
      for (const i of range(4)) {
        for (const s4 of seqs) {
          const a = pacc(i, s4);
          lines.push(`    ${a} = fma(vec4<f32>(w.${XYZW[i]}), ${gg(g, u, s4)}, ${a});`);
        }
      }
      lines.push("  }");
    }
  });
  for (const i of range(4)) {
    for (const s4 of seqs) {
      lines.push(
        `  part_sh[((j0 / UNITS) * H + 4u * q + ${i}u) * SEQ4 + ${s4}u] = ${pacc(i, s4)};`,
      );
    }
  }
  lines.push("}", "fn back_reduce(j0: u32) {");
  for (const u of range(t.units)) {
    for (const s4 of seqs) lines.push(`  var sum_${u}_${s4} = vec4<f32>(0.0);`);
  }
  lines.push("  for (var l = 0u; l < LANES; l++) {");
  for (const u of range(t.units)) {
    for (const s4 of seqs) {
      lines.push(
        `    sum_${u}_${s4} += part_sh[(l * H + min(j0 + ${u}u, H - 1u)) * SEQ4 + ${s4}u];`,
      );
    }
  }
  lines.push("  }");
  for (const u of range(t.units)) {
    for (const s4 of seqs) lines.push(`  ${dh(u, s4)} += sum_${u}_${s4};`);
  }
  lines.push(
    "}",
    "fn back_step(live: bool, j0: u32) {",
    "  for (var q = 0u; q < select(0u, H4, live); q++) { back_partial(q, j0); }",
    "  workgroupBarrier();",
    "  if (live) { back_reduce(j0); }",
    "  workgroupBarrier();",
    "}",
  );
  return lines;
}

/** The declaration of w_hh and the functions gru_tiled_backward.wgsl calls. */
export function tiledBackwardFunctions(
  t: GruTile,
  weights: WeightsBinding,
  product: BackwardProduct,
): string {
  return [
    weightsDeclaration(1, weights),
    ...carryMoves(t),
    ...biasGradStores(t),
    ...backwardUpdate(t),
    ...(product === "partial sums" ? partialSumsProduct(t) : sharedGradientsProduct(t)),
    "",
  ].join("\n");
}
