/**
 * `deno task prune`: every combination of activation pruning (pattern × criterion × mitigation)
 * and, with --weights, of weight pruning (pattern × criterion × the 8:16 paper's additions) on a
 * backbone (tasks/prune_backbones.ts), scored on its own metric beside the dense model: a table,
 * JSON and CSV, and an evaluation in the run store (src/store/prune.ts) that the dashboard draws
 * as heatmaps. A combination a layer cannot take (a pattern that does not divide its width) is
 * reported as refused and the others go on.
 */
import { parseArgs } from "node:util";
import {
  type ActivationPruner,
  applyActivationPruning,
  LAYER_ROLES,
  type LayerRole,
  type Mitigation,
  MITIGATIONS,
  needsCalibration,
  parseSparsity,
  removeActivationPruning,
  type Sparsity,
  sparsityName,
} from "../src/prune/activation.ts";
import { assertCriterion, type Criterion } from "../src/prune/criteria.ts";
import type { FitOptions } from "../src/prune/learnable.ts";
import {
  applyWeightPruning,
  removeWeightPruning,
  WEIGHT_CRITERIA,
  type WeightCriterion,
  weightNeedsCalibration,
  type WeightSpec,
} from "../src/prune/weights.ts";
import { PruneRecorder } from "../src/store/prune.ts";
import { checkStoreUrl, storeLabel } from "../src/store/open.ts";
import { newRunId, RunStore } from "../src/store/runs.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { Adam } from "../src/train/optim.ts";
import { type Backbone, openBackbone } from "./prune_backbones.ts";
import { positiveInt, positiveNumber, runMain } from "./cli.ts";

const HELP = `Usage: deno task prune --model RUN|PATH [flags]

Evaluates activation pruning (every pattern × criterion × mitigation) and, with --weights, weight
pruning (every pattern × weight criterion × addition) of a backbone on its own metric, beside the
dense model: a language-model run (validation loss and perplexity), a model file such as
data/stories260K/stories260K.bin (NLL and KL from the dense model on sequences sampled from it),
or a recommender run (validation and test NDCG@10 and HR@10). Prints a table; writes JSON and
CSV; records the evaluation in the run store (the dashboard's pruning heatmaps).

Flags:
  --model RUN|PATH     a run id under --out, a run folder, or a model file [required]
  --out DIR            runs folder (and run store) [default: runs]
  --checkpoint NAME    best or last [default: best]
  --patterns LIST      N:M patterns and uP (P% unstructured) [default: 2:4,4:8,8:16,16:32,u50]
  --criteria LIST      magnitude,weight-aware,variance,clact,amber [default: all]
  --mitigations LIST   none,variance,median-token,median-static,smoothquant,learn-shift,
                       learn-scale-shift [default: none]
  --weights LIST       weight-pruning criteria: magnitude,wanda [default: none]
  --weight-extras LIST the 8:16 paper's additions, each a +-joined set of oN:M (salient
                       outliers in their own N:M pattern), eq (equalisation), vc (variance
                       correction), or none: e.g. none,o1:16,eq,vc,o1:16+eq+vc [default: none]
  --layers LIST        q,k,v,o,gate,up,down (LM) or q,k,v,o,fc1,fc2 (SASRec) [default: all]
  --eval-tokens N      LM: validation tokens per evaluation (0: all) [default: 0]
  --calib-tokens N     calibration tokens (median-static, smoothquant, learnable, Wanda, eq, vc)
                       [default: 8192]
  --fit-epochs N       passes of the learnable mitigations' fit over the calibration [default: 20]
  --fit-lr X           Adam's learning rate for that fit [default: 0.01]
  --sequences N        model files: sequences sampled from the dense model [default: 8]
  --sequence-length N  their length in tokens, BOS included [default: 128]
  --seed N             their sampling seed [default: 1]
  --eval-users N       SASRec: users evaluated on validation and test (0: all) [default: 0]
  --store URL          record it in a run store shared by many machines:
                       postgres://USER@HOST:PORT/DB [default: <out>/runs.sqlite]
  --no-store           do not record the evaluation in the run store
  --json-out FILE      JSON of every row [default: <run folder>/prune.json]
  --csv-out FILE       CSV of every row [default: <run folder>/prune.csv]
  --help               print this help`;

export interface Row {
  kind: "dense" | "activation" | "weight";
  sparsity: string;
  criterion: string;
  mitigation: string;
  metrics: Record<string, number> | null;
  /** Weight storage in bits per element, metadata included (weight rows; 32 for dense). */
  bits: number | null;
  refused: string | null;
}

const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);

function csvOf(rows: Row[], metrics: string[]): string {
  const cols = ["kind", "sparsity", "criterion", "mitigation", ...metrics, "bits", "refused"];
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const value = (r: Row, c: string) =>
    metrics.includes(c) ? r.metrics?.[c] ?? null : r[c as keyof Row];
  return [cols.join(","), ...rows.map((r) => cols.map((c) => cell(value(r, c))).join(","))]
    .join("\n") + "\n";
}

function tableOf(rows: Row[], metrics: string[]): string {
  const head = ["kind", "sparsity", "criterion", "mitigation", ...metrics, "bits/el"];
  const body = rows.map((r) => [
    r.kind,
    r.sparsity,
    r.criterion,
    r.mitigation,
    ...metrics.map((m) => r.refused ? "refused" : r.metrics![m].toFixed(4)),
    r.bits === null ? "" : r.bits.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const notes = rows.filter((r) => r.refused).map((r) =>
    `refused ${r.kind} ${r.sparsity} ${r.criterion} ${r.mitigation}: ${r.refused}`
  );
  return [line(head), ...body.map(line), ...notes].join("\n");
}

/** One --weight-extras entry: "none", or a +-joined set of oN:M, eq, vc. */
export function parseWeightExtras(
  text: string,
): Pick<WeightSpec, "outliers" | "equalize" | "correctVariance"> {
  if (text === "none") return {};
  const extras: Pick<WeightSpec, "outliers" | "equalize" | "correctVariance"> = {};
  for (const part of text.split("+")) {
    const o = /^o(\d+):(\d+)$/.exec(part);
    if (o) extras.outliers = { n: Number(o[1]), m: Number(o[2]) };
    else if (part === "eq") extras.equalize = true;
    else if (part === "vc") extras.correctVariance = true;
    else {
      throw new Error(
        `--weight-extras: unknown ${part} in ${text} (oN:M, eq, vc joined by +, or none)`,
      );
    }
  }
  return extras;
}

function checkedList<T extends string>(flag: string, text: string, known: readonly T[]): T[] {
  const items = list(text);
  for (const x of items) {
    if (!(known as readonly string[]).includes(x)) {
      throw new Error(`${flag}: unknown ${x} (one of ${known.join(", ")})`);
    }
  }
  return items as T[];
}

const OPTIONS = {
  model: { type: "string" },
  out: { type: "string", default: "runs" },
  checkpoint: { type: "string", default: "best" },
  patterns: { type: "string", default: "2:4,4:8,8:16,16:32,u50" },
  criteria: { type: "string", default: "magnitude,weight-aware,variance,clact,amber" },
  mitigations: { type: "string", default: "none" },
  weights: { type: "string", default: "" },
  "weight-extras": { type: "string", default: "none" },
  layers: { type: "string" },
  "eval-tokens": { type: "string", default: "0" },
  "calib-tokens": { type: "string", default: "8192" },
  "fit-epochs": { type: "string", default: "20" },
  "fit-lr": { type: "string", default: "0.01" },
  sequences: { type: "string", default: "8" },
  "sequence-length": { type: "string", default: "128" },
  seed: { type: "string", default: "1" },
  "eval-users": { type: "string", default: "0" },
  store: { type: "string" },
  "no-store": { type: "boolean", default: false },
  "json-out": { type: "string" },
  "csv-out": { type: "string" },
  help: { type: "boolean", default: false },
} as const;

/** Scores the model as it stands into `row`, or records why the combination was refused. */
async function scoreInto(row: Row, b: Backbone, prepare: () => Promise<() => void>) {
  let undo: (() => void) | null = null;
  try {
    undo = await prepare();
    row.metrics = await b.score();
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    row.refused = e.message;
  } finally {
    undo?.();
  }
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: OPTIONS });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) {
    console.error("error: --model is required (see deno task prune --help)");
    return 2;
  }
  const storeUrl = values.store === undefined ? null : checkStoreUrl(values.store);
  if (values.checkpoint !== "best" && values.checkpoint !== "last") {
    console.error(`error: --checkpoint must be best or last, got ${values.checkpoint}`);
    return 2;
  }
  const patterns: Sparsity[] = list(values.patterns).map(parseSparsity);
  const criteria = list(values.criteria);
  criteria.forEach(assertCriterion);
  const mitigations = checkedList<Mitigation>("--mitigations", values.mitigations, MITIGATIONS);
  const weights = checkedList<WeightCriterion>("--weights", values.weights, WEIGHT_CRITERIA);
  const extras = list(values["weight-extras"]).map((x) => ({ name: x, ...parseWeightExtras(x) }));
  const fitLr = positiveNumber("--fit-lr", values["fit-lr"]);
  const fit: FitOptions = {
    epochs: positiveInt("--fit-epochs", values["fit-epochs"]),
    makeOptimizer: (params) => new Adam(params, { lr: fitLr }),
  };
  const calibTokens = positiveInt("--calib-tokens", values["calib-tokens"]);
  const nonNegative = (flag: string, text: string) => text === "0" ? 0 : positiveInt(flag, text);

  const engine = await Engine.create();
  try {
    const b = await openBackbone(engine, values.model, {
      out: values.out,
      checkpoint: values.checkpoint,
      evalTokens: nonNegative("--eval-tokens", values["eval-tokens"]),
      calibTokens,
      sequences: positiveInt("--sequences", values.sequences),
      sequenceLength: positiveInt("--sequence-length", values["sequence-length"]),
      seed: nonNegative("--seed", values.seed),
      evalUsers: nonNegative("--eval-users", values["eval-users"]),
    });
    const layers = values.layers
      ? checkedList<LayerRole>("--layers", values.layers, LAYER_ROLES)
      : b.layers;
    const rows: Row[] = [];
    const dense = await b.score();
    const jsonOut = values["json-out"] ?? `${b.dir}/prune.json`;
    const csvOut = values["csv-out"] ?? `${b.dir}/prune.csv`;
    const store = values["no-store"] ? null : await RunStore.open(b.storeDir, storeUrl);
    const recorder = store
      ? await PruneRecorder.start(store, {
        id: newRunId(),
        model: b.model,
        runId: b.runId,
        backbone: b.kind,
        label: `${b.label}; layers ${layers.join(",")}`,
        headline: b.metrics[0],
        higherIsBetter: b.higherIsBetter,
        dense,
        createdAt: new Date().toISOString(),
      })
      : null;
    // Written after every row, so that a long sweep cut short keeps what it scored.
    const save = async (row: Row) => {
      rows.push(row);
      if (row.kind !== "dense") {
        await recorder?.add({ ...row, kind: row.kind, pattern: row.sparsity });
      }
      const report = {
        model: b.model,
        checkpoint: values.checkpoint,
        label: b.label,
        layers,
        calibTokens,
        evaluation: recorder?.evaluation.id ?? null,
        rows,
      };
      await Deno.writeTextFile(jsonOut, JSON.stringify(report, null, 2) + "\n");
      await Deno.writeTextFile(csvOut, csvOf(rows, b.metrics));
      if (row.kind !== "dense") {
        const what = `${row.kind} ${row.sparsity} ${row.criterion} ${row.mitigation}`;
        const m = row.metrics?.[b.metrics[0]];
        console.error(`${what}: ${m === undefined ? "refused" : `${b.metrics[0]} ${m}`}`);
      }
    };
    const base = { metrics: null, bits: null, refused: null };
    const denseRow = { kind: "dense", sparsity: "-", criterion: "-", mitigation: "-" } as const;
    await save({ ...denseRow, metrics: dense, bits: 32, refused: null });
    for (const sparsity of patterns) {
      for (const criterion of criteria as Criterion[]) {
        for (const mitigation of mitigations) {
          const row: Row = {
            kind: "activation",
            sparsity: sparsityName(sparsity),
            criterion,
            mitigation,
            ...base,
          };
          await scoreInto(row, b, async () => {
            const config = { sparsity, criterion, mitigation, layers };
            const pruners: Map<string, ActivationPruner> = await applyActivationPruning(
              b.pruned,
              config,
            );
            const undo = () => removeActivationPruning(b.pruned, pruners);
            try {
              if (needsCalibration(mitigation)) {
                pruners.forEach((p) => p.startCalibration());
                await b.calibrate();
                for (const p of pruners.values()) await p.finishCalibration(fit);
              }
            } catch (e) {
              undo();
              throw e;
            }
            return undo;
          });
          await save(row);
        }
      }
      for (const criterion of weights) {
        for (const extra of extras) {
          const row: Row = {
            kind: "weight",
            sparsity: sparsityName(sparsity),
            criterion,
            mitigation: extra.name,
            ...base,
          };
          await scoreInto(row, b, async () => {
            const spec = { ...extra, sparsity, criterion, layers };
            const pruned = await applyWeightPruning(
              b.pruned,
              spec,
              weightNeedsCalibration(spec) ? b.calibrate : null,
            );
            // Storage over every pruned weight, each part at its own layout.
            let bits = 0;
            let elements = 0;
            for (const p of pruned.values()) {
              const l = p.nm.layout;
              bits += p.storage().total * l.lanes * l.d;
              elements += l.lanes * l.d;
            }
            row.bits = bits / elements;
            return () => removeWeightPruning(b.pruned, pruned);
          });
          await save(row);
        }
      }
    }
    console.log(`${b.label}; layers ${layers.join(",")}:`);
    console.log(tableOf(rows, b.metrics));
    console.log(`wrote ${jsonOut} and ${csvOut}`);
    if (recorder) {
      const where = storeLabel(b.storeDir, storeUrl);
      console.log(`recorded evaluation ${recorder.evaluation.id} in ${where}`);
    }
    await store?.close();
    b.dispose();
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
