/**
 * `deno task prune`: every combination of activation pruning (pattern × criterion × mitigation)
 * and, with --weights, of weight pruning (pattern × criterion) on a language-model run, scored on
 * its validation split (nats per token and perplexity) beside the dense model: a table, JSON and
 * CSV. A combination a layer cannot take (a pattern that does not divide its width) is reported
 * as refused and the others go on.
 */
import { parseArgs } from "node:util";
import { tokenObjectiveOf } from "../src/loss/token_objectives.ts";
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
import {
  applyWeightPruning,
  removeWeightPruning,
  WEIGHT_CRITERIA,
  type WeightCriterion,
} from "../src/prune/weights.ts";
import type { FitOptions } from "../src/prune/learnable.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { evaluateText, loadLmRun, prepareText } from "../src/train/lm.ts";
import { Adam } from "../src/train/optim.ts";
import { positiveInt, runMain } from "./cli.ts";

const HELP = `Usage: deno task prune --model RUN|PATH [flags]

Evaluates activation pruning (every pattern × criterion × mitigation) and, with --weights, weight
pruning (every pattern × weight criterion) of a language-model run on its validation split: nats
per token and perplexity against the dense model. Prints a table; writes JSON and CSV.

Flags:
  --model RUN|PATH     a run id under --out, or the path of a run folder [required]
  --out DIR            runs folder [default: runs]
  --checkpoint NAME    best or last [default: best]
  --patterns LIST      N:M patterns and uP (P% unstructured) [default: 2:4,4:8,8:16,16:32,u50]
  --criteria LIST      magnitude,weight-aware,variance,clact,amber [default: all]
  --mitigations LIST   none,variance,median-token,median-static,smoothquant,learn-shift,
                       learn-scale-shift [default: none]
  --fit-epochs N       passes of the learnable mitigations' fit over the calibration [default: 20]
  --fit-lr X           Adam's learning rate for that fit [default: 0.01]
  --weights LIST       weight-pruning criteria: magnitude,wanda [default: none]
  --layers LIST        q,k,v,o,gate,up,down [default: all seven]
  --eval-tokens N      validation tokens per evaluation (0: all) [default: 0]
  --calib-tokens N     training tokens calibrating median-static, smoothquant, Wanda [default: 8192]
  --json-out FILE      JSON of every row [default: <run folder>/prune.json]
  --csv-out FILE       CSV of every row [default: <run folder>/prune.csv]
  --help               print this help`;

interface Row {
  kind: "dense" | "activation" | "weight";
  sparsity: string;
  criterion: string;
  mitigation: string;
  loss: number | null;
  ppl: number | null;
  /** Weight storage in bits per element, metadata included (weight rows). */
  bits: number | null;
  refused: string | null;
}

const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);

function csvOf(rows: Row[]): string {
  const cols = ["kind", "sparsity", "criterion", "mitigation", "loss", "ppl", "bits", "refused"];
  const cell = (v: unknown) => {
    const s = v === null ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c as keyof Row])).join(","))]
    .join("\n") + "\n";
}

function tableOf(rows: Row[]): string {
  const head = ["kind", "sparsity", "criterion", "mitigation", "loss", "ppl", "bits/el"];
  const body = rows.map((r) => [
    r.kind,
    r.sparsity,
    r.criterion,
    r.mitigation,
    r.refused ? "refused" : r.loss!.toFixed(4),
    r.refused ? "" : r.ppl!.toFixed(3),
    r.bits === null ? "" : r.bits.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const notes = rows.filter((r) => r.refused).map((r) =>
    `refused ${r.kind} ${r.sparsity} ${r.criterion}: ${r.refused}`
  );
  return [line(head), ...body.map(line), ...notes].join("\n");
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      out: { type: "string", default: "runs" },
      checkpoint: { type: "string", default: "best" },
      patterns: { type: "string", default: "2:4,4:8,8:16,16:32,u50" },
      criteria: { type: "string", default: "magnitude,weight-aware,variance,clact,amber" },
      mitigations: { type: "string", default: "none" },
      weights: { type: "string", default: "" },
      layers: { type: "string", default: "q,k,v,o,gate,up,down" },
      "eval-tokens": { type: "string", default: "0" },
      "calib-tokens": { type: "string", default: "8192" },
      "fit-epochs": { type: "string", default: "20" },
      "fit-lr": { type: "string", default: "0.01" },
      "json-out": { type: "string" },
      "csv-out": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) {
    console.error("error: --model is required (see deno task prune --help)");
    return 2;
  }
  if (values.checkpoint !== "best" && values.checkpoint !== "last") {
    console.error(`error: --checkpoint must be best or last, got ${values.checkpoint}`);
    return 2;
  }
  const patterns: Sparsity[] = list(values.patterns).map(parseSparsity);
  const criteria = list(values.criteria);
  criteria.forEach(assertCriterion);
  const mitigations = list(values.mitigations) as Mitigation[];
  for (const m of mitigations) {
    if (!(MITIGATIONS as readonly string[]).includes(m)) {
      throw new Error(`--mitigations: unknown ${m} (one of ${MITIGATIONS.join(", ")})`);
    }
  }
  const weights = list(values.weights) as WeightCriterion[];
  for (const w of weights) {
    if (!(WEIGHT_CRITERIA as readonly string[]).includes(w)) {
      throw new Error(`--weights: unknown ${w} (one of ${WEIGHT_CRITERIA.join(", ")})`);
    }
  }
  const layers = list(values.layers) as LayerRole[];
  for (const l of layers) {
    if (!(LAYER_ROLES as readonly string[]).includes(l)) {
      throw new Error(`--layers: unknown ${l} (one of ${LAYER_ROLES.join(", ")})`);
    }
  }
  const evalTokens = values["eval-tokens"] === "0"
    ? 0
    : positiveInt("--eval-tokens", values["eval-tokens"]);
  const calibTokens = positiveInt("--calib-tokens", values["calib-tokens"]);
  const fitLr = Number(values["fit-lr"]);
  if (!(fitLr > 0)) throw new Error(`--fit-lr must be a positive number, got ${values["fit-lr"]}`);
  const fit: FitOptions = {
    epochs: positiveInt("--fit-epochs", values["fit-epochs"]),
    makeOptimizer: (params) => new Adam(params, { lr: fitLr }),
  };

  // A path with a folder in it names the run folder itself; a bare id lives under --out.
  const path = values.model.replace(/\/+$/, "");
  const [out, id] = path.includes("/")
    ? [path.slice(0, path.lastIndexOf("/")), path.slice(path.lastIndexOf("/") + 1)]
    : [values.out, path];
  const engine = await Engine.create();
  try {
    const { model, run } = await loadLmRun(engine, out, id, values.checkpoint);
    const data = await prepareText(run);
    const objective = tokenObjectiveOf(run.loss);
    const { train, valid, validChars } = data.split;
    const score = () =>
      evaluateText(model, objective, valid, {
        seqLen: run.seqLen,
        batchSize: run.batchSize,
        limit: evalTokens,
        charsPerToken: validChars / valid.length,
      });
    // Calibration is forward passes over the start of the training split; its loss is unused.
    const calibrate = async () =>
      void (await evaluateText(model, objective, train, {
        seqLen: run.seqLen,
        batchSize: run.batchSize,
        limit: calibTokens,
        charsPerToken: 1,
      }));
    const rows: Row[] = [];
    const dense = await score();
    const dir = `${out}/${id}`;
    const jsonOut = values["json-out"] ?? `${dir}/prune.json`;
    const csvOut = values["csv-out"] ?? `${dir}/prune.csv`;
    // Written after every row, so that a long sweep cut short keeps what it scored.
    const save = async (row: Row) => {
      rows.push(row);
      const report = {
        run: id,
        checkpoint: values.checkpoint,
        data: data.label,
        layers,
        evalTokens: dense.tokens,
        calibTokens,
        rows,
      };
      await Deno.writeTextFile(jsonOut, JSON.stringify(report, null, 2) + "\n");
      await Deno.writeTextFile(csvOut, csvOf(rows));
    };
    await save({
      kind: "dense",
      sparsity: "-",
      criterion: "-",
      mitigation: "-",
      loss: dense.loss,
      ppl: dense.ppl,
      bits: 32,
      refused: null,
    });
    for (const sparsity of patterns) {
      for (const criterion of criteria as Criterion[]) {
        for (const mitigation of mitigations) {
          const row: Row = {
            kind: "activation",
            sparsity: sparsityName(sparsity),
            criterion,
            mitigation,
            loss: null,
            ppl: null,
            bits: null,
            refused: null,
          };
          let pruners: Map<string, ActivationPruner> | null = null;
          try {
            pruners = await applyActivationPruning(model, {
              sparsity,
              criterion,
              mitigation,
              layers,
            });
            if (needsCalibration(mitigation)) {
              pruners.forEach((p) => p.startCalibration());
              await calibrate();
              for (const p of pruners.values()) await p.finishCalibration(fit);
            }
            const m = await score();
            row.loss = m.loss;
            row.ppl = m.ppl;
          } catch (e) {
            if (!(e instanceof RangeError)) throw e;
            row.refused = e.message;
          } finally {
            if (pruners) removeActivationPruning(model, pruners);
          }
          await save(row);
          console.error(
            `${row.kind} ${row.sparsity} ${criterion} ${mitigation}: ${row.loss ?? "refused"}`,
          );
        }
      }
      for (const criterion of weights) {
        const row: Row = {
          kind: "weight",
          sparsity: sparsityName(sparsity),
          criterion,
          mitigation: "-",
          loss: null,
          ppl: null,
          bits: null,
          refused: null,
        };
        try {
          const pruned = await applyWeightPruning(
            model,
            { sparsity, criterion, layers },
            criterion === "wanda" ? calibrate : null,
          );
          try {
            const m = await score();
            row.loss = m.loss;
            row.ppl = m.ppl;
            // Storage over every pruned weight, each at its own layout.
            let bits = 0;
            let elements = 0;
            for (const p of pruned.values()) {
              const l = p.nm.layout;
              bits += p.storage().total * l.lanes * l.d;
              elements += l.lanes * l.d;
            }
            row.bits = bits / elements;
          } finally {
            removeWeightPruning(model, pruned);
          }
        } catch (e) {
          if (!(e instanceof RangeError)) throw e;
          row.refused = e.message;
        }
        await save(row);
        console.error(`${row.kind} ${row.sparsity} ${criterion}: ${row.loss ?? "refused"}`);
      }
    }
    console.log(
      `run ${id} (${values.checkpoint}), ${dense.tokens} validation tokens of ${data.label}, ` +
        `layers ${layers.join(",")}:`,
    );
    console.log(tableOf(rows));
    console.log(`wrote ${jsonOut} and ${csvOut}`);
    model.dispose();
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
