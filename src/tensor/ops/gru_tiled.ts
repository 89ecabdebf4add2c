/**
 * The WGSL functions of the tiled GRU kernels (shaders/gru_tiled_*.wgsl), generated unrolled over
 * an invocation's tile of units × sequences: llvmpipe keeps named variables in registers, where
 * an array indexed in a loop would live in memory and be loaded lane by lane.
 */

/** A tile: `units` hidden units (a multiple of 4) of `seq` sequences (a multiple of 4). */
export interface GruTile {
  seq: number;
  units: number;
}

const GATES = ["r", "z", "n"] as const;
const XYZW = ["x", "y", "z", "w"] as const;

const range = (n: number) => [...Array(n).keys()];
/** Accumulator of gate g, unit u, sequences 4·s4 .. +3. */
const acc = (g: string, u: number, s4: number) => `acc_${g}_${u}_${s4}`;
/** The own state of unit u, sequences 4·s4 .. +3. */
const own = (u: number, s4: number) => `hown_${u}_${s4}`;
/** The vec4 over units 4q .. 4q+3 of sequence s, from per-unit vec4s over sequences. */
const acrossUnits = (name: (u: number, s4: number) => string, q: number, s: number) =>
  `vec4<f32>(${
    range(4).map((i) => `${name(4 * q + i, Math.floor(s / 4))}.${XYZW[s % 4]}`).join(", ")
  })`;

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
  lines.push("fn product_init(j0: u32) {");
  for (const u of units) {
    lines.push(`  let unit${u} = min(j0 + ${u}u, H - 1u);`);
    GATES.forEach((g, gi) => {
      for (const s4 of seqs) {
        lines.push(`  ${acc(g, u, s4)} = vec4<f32>(b_hh[${gi}u * H + unit${u}]);`);
      }
    });
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
        `    let row = (b0 + ${s}u) * p.steps + t;`,
        `    let h_old = ${acrossUnits(own, q, s)};`,
        `    var h_new = h_old;`,
        `    if (t < len[${s}]) {`,
        `      let g = row * 3u * H4 + j0 / 4u + ${q}u;`,
        `      let hn = ${acrossUnits((u, v) => acc("n", u, v), q, s)};`,
        `      let r = stable_sigmoid(gx[g] + ${acrossUnits((u, v) => acc("r", u, v), q, s)});`,
        `      let z = stable_sigmoid(gx[g + H4] + ${
          acrossUnits((u, v) => acc("z", u, v), q, s)
        });`,
        `      let n = tanh(gx[g + 2u * H4] + r * hn);`,
        `      h_new = (1.0 - z) * n + z * h_old;`,
        `      let w = row * 4u * H4 + j0 / 4u + ${q}u;`,
        `      work[w] = r;`,
        `      work[w + H4] = z;`,
        `      work[w + 2u * H4] = n;`,
        `      work[w + 3u * H4] = hn;`,
        ...range(4).map((i) => `      ${own(4 * q + i, s4)}.${x} = h_new[${i}];`),
        `    }`,
        `    hprev[row * H4 + j0 / 4u + ${q}u] = h_old;`,
        `    hs[row * H4 + j0 / 4u + ${q}u] = h_new;`,
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

/** The functions gru_tiled_forward.wgsl calls. */
export function tiledForwardFunctions(t: GruTile): string {
  return [...forwardProduct(t), ...forwardUpdate(t), ...stateMoves(t), ""].join("\n");
}
