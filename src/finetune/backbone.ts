/**
 * The pruned backbone a fine-tuning run starts from, in a form training can pass through:
 * - weight pruning: src/prune's compressed weights decoded back into each layer's dense W (zeros
 *   where pruned), so the layers multiply densely and W is an ordinary tensor to adapt; the
 *   dense originals stay on the host (D = W − W_pruned for the general salience score);
 * - activation pruning: src/prune's pruner on each layer for evaluation, and while training the
 *   same choice of kept values as a mask on the tape (TrainableActivationPruning).
 * `deploy` puts the evaluation form back after training (fresh pruners, scored from the trained
 * weights); `reprune` prunes trained weights again (an update may fill pruned places).
 */
import type { Linear, LinearInputTransform } from "../nn/linear.ts";
import type { Module } from "../nn/module.ts";
import {
  type ActivationPruner,
  applyActivationPruning,
  type LayerRole,
  linearLayers,
  parseSparsity,
  removeActivationPruning,
  type Sparsity,
  sparsityName,
} from "../prune/activation.ts";
import { assertCriterion, type Criterion } from "../prune/criteria.ts";
import {
  applyWeightPruning,
  removeWeightPruning,
  WEIGHT_CRITERIA,
  type WeightCriterion,
  type WeightPruned,
} from "../prune/weights.ts";
import { decodeNm } from "../sparse/prune.ts";
import { TrainableActivationPruning } from "./activation.ts";

export type PruneKind = "weight" | "act" | "none";

export interface BackbonePruning {
  kind: PruneKind;
  /** Null for "none". */
  sparsity: Sparsity | null;
  criterion: string;
}

/** "weight-8:16", "act-8:16", "act-u50" or "none" → the spec; the error says what is accepted. */
export function parseBackbonePruning(text: string, criterion: string): BackbonePruning {
  if (text === "none") return { kind: "none", sparsity: null, criterion };
  const m = /^(weight|act)-(.+)$/.exec(text);
  if (!m) {
    throw new RangeError(`--prune ${text}: expected weight-N:M, act-N:M (e.g. act-8:16) or none`);
  }
  const kind = m[1] as PruneKind;
  if (kind === "weight" && !(WEIGHT_CRITERIA as readonly string[]).includes(criterion)) {
    throw new RangeError(
      `--criterion ${criterion}: weight pruning takes ${WEIGHT_CRITERIA.join(", ")}`,
    );
  }
  if (kind === "act") assertCriterion(criterion);
  return { kind, sparsity: parseSparsity(m[2]), criterion };
}

export const pruningName = (p: BackbonePruning) =>
  p.sparsity ? `${p.kind}-${sparsityName(p.sparsity)} ${p.criterion}` : "none";

/** The chosen layers of a model: the roles given whose input width the sparsity can group. */
export function chooseLayers(
  model: Module,
  roles: readonly LayerRole[],
  sparsity: Sparsity | null,
): { chosen: { name: string; layer: Linear }[]; skipped: string[] } {
  const chosen: { name: string; layer: Linear }[] = [];
  const skipped: string[] = [];
  for (const l of linearLayers(model)) {
    if (!roles.includes(l.role)) continue;
    const fits = !sparsity || !("pattern" in sparsity) ||
      l.layer.inFeatures % sparsity.pattern.m === 0;
    if (fits) chosen.push({ name: l.name, layer: l.layer });
    else skipped.push(l.name);
  }
  if (!chosen.length) throw new RangeError(`no layer of the model is one of ${roles.join(",")}`);
  return { chosen, skipped };
}

export class PrunedBackbone {
  private pruners: Map<string, ActivationPruner> | null = null;
  private trainable: Map<string, TrainableActivationPruning> | null = null;

  private constructor(
    readonly spec: BackbonePruning,
    readonly model: Module,
    readonly layers: { name: string; layer: Linear }[],
    /** Weight pruning: the dense weights before pruning, by layer name. */
    readonly originals: Map<string, Float32Array>,
  ) {}

  /**
   * Prunes `layers` of `model` by `spec`; `calibrate` runs calibration batches (Wanda's input
   * norms).
   */
  static async create(
    model: Module,
    spec: BackbonePruning,
    layers: { name: string; layer: Linear }[],
    calibrate: () => Promise<void>,
  ): Promise<PrunedBackbone> {
    const originals = new Map<string, Float32Array>();
    const b = new PrunedBackbone(spec, model, layers, originals);
    if (spec.kind === "weight") {
      for (const l of layers) originals.set(l.name, (await l.layer.weight.read()) as Float32Array);
      await b.pruneWeights(calibrate);
    }
    if (spec.kind === "act") await b.deploy();
    return b;
  }

  private config() {
    const roles = new Set(
      linearLayers(this.model).filter((l) => this.layers.some((c) => c.name === l.name)).map((l) =>
        l.role
      ),
    );
    return { sparsity: this.spec.sparsity!, layers: [...roles] };
  }

  /** Each chosen layer's W becomes its pruned form, dense (zeros where pruned). */
  private async pruneWeights(calibrate: () => Promise<void>): Promise<void> {
    const criterion = this.spec.criterion as WeightCriterion;
    const only = new Set(this.layers.map((l) => l.name));
    const pruned = await applyWeightPruning(
      this.model,
      { ...this.config(), criterion },
      criterion === "wanda" ? calibrate : null,
    );
    // Roles may name layers that were not chosen (a width the pattern cannot group): skip them.
    for (const [name, p] of pruned) {
      if (!only.has(name)) continue;
      const l = this.layers.find((c) => c.name === name)!.layer;
      const dense = decodeNm(p.nm);
      l.weight.engine.gpu.upload(l.weight.storage, await dense.read());
      dense.dispose();
    }
    removeWeightPruning(this.model, pruned);
  }

  /** The transforms to train through (activation pruning), replacing the pruners. */
  async forTraining(): Promise<void> {
    if (this.spec.kind !== "act") return;
    this.dropPruners();
    this.trainable = new Map();
    for (const l of this.layers) {
      const t = await TrainableActivationPruning.create(
        l.layer.weight,
        this.spec.sparsity!,
        this.spec.criterion as Criterion,
        l.name,
      );
      l.layer.inputTransform = t;
      this.trainable.set(l.name, t);
    }
  }

  /** The evaluation form: activation pruners made from the weights as they are now. */
  async deploy(): Promise<void> {
    if (this.spec.kind !== "act") return;
    this.dropTrainable();
    this.dropPruners();
    const all = await applyActivationPruning(this.model, {
      ...this.config(),
      criterion: this.spec.criterion as Criterion,
      mitigation: "none",
    });
    this.pruners = all;
  }

  /** Weight pruning: prunes the (trained) weights again; returns how to undo it. */
  async reprune(calibrate: () => Promise<void>): Promise<() => void> {
    if (this.spec.kind !== "weight") return () => {};
    const pruned: Map<string, WeightPruned> = await applyWeightPruning(
      this.model,
      { ...this.config(), criterion: this.spec.criterion as WeightCriterion },
      this.spec.criterion === "wanda" ? calibrate : null,
    );
    return () => removeWeightPruning(this.model, pruned);
  }

  /** The input transform of a chosen layer now (what calibration must run in front of). */
  transformOf(name: string): LinearInputTransform | null {
    return this.layers.find((l) => l.name === name)?.layer.inputTransform ?? null;
  }

  private dropPruners(): void {
    if (this.pruners) removeActivationPruning(this.model, this.pruners);
    this.pruners = null;
  }

  private dropTrainable(): void {
    if (!this.trainable) return;
    for (const l of this.layers) l.layer.inputTransform = null;
    this.trainable.forEach((t) => t.dispose());
    this.trainable = null;
  }

  dispose(): void {
    this.dropPruners();
    this.dropTrainable();
  }
}
