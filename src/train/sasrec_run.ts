/**
 * A trained SASRec run opened for pruning or fine-tuning: its stored configuration, data and
 * checkpoint, scored by full-catalogue NDCG@10 and HR@10 on validation and test, with calibration
 * passes over the training sequences of the first users. Shared by `deno task prune` and
 * `deno task finetune`.
 */
import type { SasRec } from "../models/sasrec.ts";
import type { Engine } from "../tensor/engine.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { DEFAULTS, type TrainConfig } from "./config.ts";
import { evaluateRanking } from "./evaluate.ts";
import type { MetricGroup } from "./events.ts";
import { buildModel, prepareData, type PreparedData } from "./recommender.ts";

/** A run folder's recorded configuration, or null when `dir` holds none. */
export async function readRunConfig(dir: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch {
    return null;
  }
}

export interface SasrecRunOptions {
  checkpoint: "best" | "last";
  /** Calibration users = calibTokens / the run's sequence length (at least one). */
  calibTokens: number;
  /** Users evaluated on validation and test, sampled with the run's seed (0: the run's). */
  evalUsers: number;
}

export interface SasrecRun {
  config: TrainConfig;
  data: PreparedData;
  model: SasRec;
  label: string;
  /** Validation and test NDCG@10 and HR@10 as valid_ndcg@10, …, test_hr@10. */
  score(): Promise<Record<string, number>>;
  /** Validation NDCG@10 and HR@10 alone. */
  validate(): Promise<MetricGroup>;
  /** Forward passes over calibration sequences (their results unused). */
  calibrate(): Promise<void>;
}

/** Opens run `id` under `out` whose stored configuration is `saved`. */
export async function openSasrecRun(
  e: Engine,
  out: string,
  id: string,
  saved: Record<string, unknown>,
  o: SasrecRunOptions,
): Promise<SasrecRun> {
  const config: TrainConfig = { ...DEFAULTS, ...saved, out } as TrainConfig;
  if (o.evalUsers > 0) config.evalUsers = o.evalUsers;
  const data = await prepareData(config);
  const model = buildModel(e, config, data.dataset.items);
  try {
    await loadCheckpoint(`${out}/${id}/${o.checkpoint}.safetensors`, model, null);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const opts = { keepSeen: config.keepSeen, ks: [10] };
  // Calibration reads each training sequence but its last item, which it is asked to rank.
  const users = Math.max(1, Math.floor(o.calibTokens / config.seqLen));
  const calibration = data.split.train.filter((s) => s.length >= 2).slice(0, users).map((s, i) => ({
    user: i,
    history: s.subarray(0, s.length - 1),
    target: s[s.length - 1],
  }));
  const at10 = (g: MetricGroup, split: string) => ({
    [`${split}_ndcg@10`]: g["ndcg@10"],
    [`${split}_hr@10`]: g["hr@10"],
  });
  const validate = () => evaluateRanking(model, data.split.valid, opts);
  return {
    config,
    data,
    model,
    label: `run ${id} (${o.checkpoint}), ${data.split.test.length} test users of ${data.label}`,
    validate,
    score: async () => ({
      ...at10(await validate(), "valid"),
      ...at10(await evaluateRanking(model, data.split.test, opts), "test"),
    }),
    calibrate: async () => void (await evaluateRanking(model, calibration, opts)),
  };
}
