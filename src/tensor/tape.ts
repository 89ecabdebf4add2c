/** Reverse-mode autograd: ops append nodes, `backward` walks them in reverse. */
import type { SparseRows, Tensor } from "./tensor.ts";
import { ShapeError, shapeString } from "./tensor.ts";

/** What a backward function returns for one input: a dense gradient, sparse rows, or nothing. */
export type InputGrad = Tensor | SparseRows | null;

export interface TapeNode {
  op: string;
  inputs: Tensor[];
  output: Tensor;
  /**
   * Receives dL/d(output); returns one gradient per input (null where not needed). `into[j]`,
   * where not null, is the dense gradient input j has gathered so far: a backward may add its
   * own to it in place and return it (one pass fewer than a separate sum), or ignore it.
   */
  backward: (gradOut: Tensor, into: (Tensor | null)[]) => InputGrad[];
}

export class Tape {
  readonly nodes: TapeNode[] = [];

  record(node: TapeNode): void {
    this.nodes.push(node);
  }
}

function isSparse(g: InputGrad): g is SparseRows {
  return g !== null && "idsGpu" in g;
}

/**
 * Runs the tape backwards from `output`, seeded with `seed` (ones when omitted, scalar outputs).
 * Leaves (tensors that require grad and were not produced on the tape) accumulate into `.grad`
 * or, for sparse gradients, `.sparseGrads`. Intermediate gradients are freed as soon as used.
 * The tape takes ownership of `seed`. `accumulate` (into += g) and `clone` come from the ops
 * layer so that the tape does not depend on it.
 */
export function runBackward(
  tape: Tape,
  output: Tensor,
  seed: Tensor,
  accumulate: (into: Tensor, g: Tensor) => void,
  clone: (g: Tensor) => Tensor,
): void {
  if (seed.shape.join() !== output.shape.join()) {
    throw new ShapeError(
      "backward",
      `seed gradient ${shapeString(seed.shape)} does not match output ${shapeString(output.shape)}`,
    );
  }
  const produced = new Set(tape.nodes.map((n) => n.output));
  const grads = new Map<Tensor, Tensor>([[output, seed]]);
  for (let i = tape.nodes.length - 1; i >= 0; i--) {
    const node = tape.nodes[i];
    const gradOut = grads.get(node.output);
    if (!gradOut) continue;
    grads.delete(node.output);
    const targetOf = (input: Tensor) => produced.has(input) ? grads.get(input) : input.grad;
    // Offered only to an input that appears once: a second in-place sum would read the first.
    const into = node.inputs.map((input) =>
      input.requiresGrad && node.inputs.indexOf(input) === node.inputs.lastIndexOf(input)
        ? targetOf(input) ?? null
        : null
    );
    const inputGrads = node.backward(gradOut, into);
    // A backward may pass gradOut (or one tensor) through to several inputs: each gets its own.
    const handedOut = new Set<InputGrad>();
    node.inputs.forEach((input, j) => {
      let g = inputGrads[j];
      if (!g || !input.requiresGrad) return;
      if (g === into[j]) {
        // Already added to the gradient gathered so far.
        handedOut.add(g);
        return;
      }
      if (handedOut.has(g)) g = clone(g as Tensor);
      handedOut.add(g);
      if (isSparse(g)) {
        input.sparseGrads.push(g);
        input.engine.keep(g.idsGpu, g.rows);
        return;
      }
      const target = targetOf(input);
      if (target) {
        accumulate(target, g);
        g.dispose();
      } else if (produced.has(input)) {
        grads.set(input, g);
      } else {
        input.grad = g;
        input.engine.keep(g);
      }
    });
    for (const g of inputGrads) if (g && !handedOut.has(g)) disposeGrad(g);
    if (!handedOut.has(gradOut)) gradOut.dispose();
  }
  for (const g of grads.values()) g.dispose();
}

function disposeGrad(g: Tensor | SparseRows): void {
  if (isSparse(g)) {
    g.idsGpu.dispose();
    g.rows.dispose();
  } else {
    g.dispose();
  }
}
