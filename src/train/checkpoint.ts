/**
 * Checkpoints: the model's parameters and the optimiser's moments in one safetensors file, the
 * training position in its metadata, and the run's config beside it as JSON. Both are written
 * atomically, so a crash leaves the previous checkpoint intact.
 */
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Adam } from "./optim.ts";
import {
  atomicWriteText,
  type NamedArray,
  readSafetensors,
  writeSafetensors,
} from "./safetensors.ts";

/** Where training stands after a completed epoch. */
export interface TrainingPosition {
  epoch: number;
  step: number;
  /** The best value of the evaluator's selected validation metric so far (null: none yet). */
  bestValid: number | null;
  bestEpoch: number;
  evalsWithoutGain: number;
}

const OPTIMIZER_PREFIX = "optimizer.";

export async function saveCheckpoint(
  path: string,
  model: Module,
  optimizer: Adam | null,
  position: TrainingPosition,
): Promise<void> {
  const tensors: Record<string, NamedArray> = {};
  for (const [name, t] of model.namedParameters()) tensors[name] = await toNamed(t);
  if (optimizer) {
    for (const [name, t] of Object.entries(optimizer.stateTensors())) {
      tensors[OPTIMIZER_PREFIX + name] = await toNamed(t);
    }
  }
  await writeSafetensors(path, tensors, {
    position: JSON.stringify(position),
    optimizerSteps: String(optimizer?.stepCount ?? 0),
  });
}

export async function writeConfig(path: string, config: unknown): Promise<void> {
  await atomicWriteText(path, JSON.stringify(config, null, 2) + "\n");
}

/** Loads parameters (and optimiser moments when given) in place; returns the saved position. */
export async function loadCheckpoint(
  path: string,
  model: Module,
  optimizer: Adam | null,
): Promise<TrainingPosition> {
  const file = await readSafetensors(path);
  const targets: [string, Tensor][] = [...model.namedParameters()];
  if (optimizer) {
    for (const [name, t] of Object.entries(optimizer.stateTensors())) {
      targets.push([OPTIMIZER_PREFIX + name, t]);
    }
  }
  for (const [name, t] of targets) {
    const saved = file.tensors[name];
    if (!saved) throw new Error(`${path}: checkpoint has no tensor "${name}"`);
    if (saved.shape.join() !== t.shape.join()) {
      throw new Error(
        `${path}: "${name}" is [${saved.shape}] in the checkpoint, [${t.shape}] in the model`,
      );
    }
    t.engine.gpu.upload(t.storage, saved.data);
  }
  if (optimizer) optimizer.stepCount = Number(file.metadata.optimizerSteps ?? 0);
  return readPosition(path, file.metadata.position);
}

/** The saved position; checkpoints written before the generic loop named the best value
 * `bestValidNdcg10`, −1 for none. */
function readPosition(path: string, text: string | undefined): TrainingPosition {
  if (text === undefined) throw new Error(`${path}: checkpoint has no training position`);
  const saved = JSON.parse(text) as TrainingPosition & { bestValidNdcg10?: number };
  if (saved.bestValid === undefined && saved.bestValidNdcg10 !== undefined) {
    const { bestValidNdcg10: legacy, ...rest } = saved;
    return { ...rest, bestValid: legacy < 0 ? null : legacy };
  }
  return saved;
}

async function toNamed(t: Tensor): Promise<NamedArray> {
  const data = await t.read();
  return {
    dtype: t.dtype === "f32" ? "F32" : "I32",
    shape: [...t.shape],
    data: data as Float32Array,
  };
}
