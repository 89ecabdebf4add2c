/** `deno task bench:train`: sequences/s, s/epoch and peak GPU bytes per loss; `--peer` adds PyTorch. */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { tuneMatmul } from "../src/tensor/ops/matmul_tune.ts";
import { DEFAULTS, type TrainConfig } from "../src/train/config.ts";
import { prepareData } from "../src/train/recommender.ts";
import {
  benchTrainVariant,
  formatProfiles,
  formatTrainReport,
  formatValidations,
  type PeerFigures,
  type TrainFigures,
  type TrainVariant,
} from "../bench/train.ts";
import { writeResult } from "../bench/util.ts";
import { peerEnv, pythonWithTorch } from "../bench/python.ts";
import { positiveInt, runMain } from "./cli.ts";

const BEAUTY = fileURLToPath(new URL("../data/Beauty.txt", import.meta.url));
const PEER = fileURLToPath(new URL("../../shared/peer/torch_sasrec_train.py", import.meta.url));

const VARIANTS: TrainVariant[] = [
  { label: "cce- 256 uniform", overrides: { loss: "cce-", negatives: 256, sampler: "uniform" } },
  { label: "cce- 256 shared", overrides: { loss: "cce-", negatives: 256, sampler: "shared" } },
  { label: "cce", overrides: { loss: "cce" } },
  { label: "ce", overrides: { loss: "ce" } },
  { label: "ce- 256 shared", overrides: { loss: "ce-", negatives: 256, sampler: "shared" } },
  { label: "ce- 256 uniform", overrides: { loss: "ce-", negatives: 256, sampler: "uniform" } },
  { label: "bce", overrides: { loss: "bce", sampler: "uniform" } },
  { label: "gbce 256", overrides: { loss: "gbce", negatives: 256, sampler: "uniform" } },
  // The same steps on left-padded [B, L] batches: what packing saves.
  {
    label: "ce- 256 shared padded",
    overrides: { loss: "ce-", negatives: 256, sampler: "shared", padded: true },
  },
  { label: "ce padded", overrides: { loss: "ce", padded: true } },
];

const HELP = `Usage: deno task bench:train [flags]

Trains SASRec on the Beauty configuration (d=64, L=50, 2 blocks, 1 head, dropout 0.3, B=128,
Adam 1e-3) for a few steps per loss and reports ms/step, sequences/s, s/epoch (batches per epoch
× s/step), the allocator's peak GPU bytes (reserved and live) and the memory estimate. Prints a
table and writes bench/results/train-<adapter>.json (train-profile-…, train-<catalog>-… with
--profile, --catalog).

Flags:
  --data PATH      sequence or interaction file [default: ${BEAUTY}]
  --catalog NAME   train on the synthetic catalogue small|medium|large|<items> instead
  --validate       also time one validation pass per variant (as each epoch of
                   \`deno task train\` ends) and print when the first would print
  --steps N        timed steps per variant [default: 20]
  --warmup N       untimed steps first (pipeline compiles) [default: 3]
  --only LIST      comma-separated variants (${VARIANTS.map((v) => v.label).join(", ")})
                   [default: all]
  --profile        time every kernel (timestamp queries) and print where each step's time
                   goes; slower, so its figures are not the throughput table's [default: false]
  --peer           also train one epoch of the PyTorch peer (ce, ce- 256 shared, ce-pp 256)
                   and print the ratio [default: false]
  --peer-script P  the peer script [default: ${PEER}]
  --help           print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string", default: BEAUTY },
      catalog: { type: "string" },
      validate: { type: "boolean", default: false },
      steps: { type: "string", default: "20" },
      warmup: { type: "string", default: "3" },
      only: { type: "string" },
      peer: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "peer-script": { type: "string", default: PEER },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const steps = positiveInt("--steps", values.steps);
  const warmup = positiveInt("--warmup", values.warmup);
  const wanted = values.only?.split(",").map((s) => s.trim());
  const variants = wanted ? VARIANTS.filter((v) => wanted.includes(v.label)) : VARIANTS;
  if (wanted && variants.length !== wanted.length) {
    console.error(`error: --only: unknown variant in "${values.only}"`);
    return 2;
  }
  if (values.catalog && values.peer) {
    console.error("error: --peer trains the PyTorch peer on a --data file, not a --catalog");
    return 2;
  }
  const base: TrainConfig = values.catalog
    ? { ...DEFAULTS, data: null, catalog: values.catalog }
    : { ...DEFAULTS, data: values.data };
  const data = await prepareData(base);
  const engine = await Engine.create({ profile: values.profile });
  const rows: TrainFigures[] = [];
  try {
    const tuned = await tuneMatmul(engine, { cacheDir: "runs/cache" });
    console.log(
      `${engine.gpu.adapterName}; matmul ${tuned.variant.name} (${tuned.source}); ` +
        `${data.label}: ${data.dataset.users} users`,
    );
    for (const v of variants) {
      const f = await benchTrainVariant(engine, base, data, v, steps, warmup, values.validate);
      console.log(`${v.label}: ${f.msPerStep.toFixed(0)} ms/step`);
      rows.push(f);
    }
    const peers = values.peer ? await runPeers(values["peer-script"], values.data) : [];
    console.log(formatTrainReport(rows, peers));
    if (values.profile) console.log(`\n${formatProfiles(rows)}`);
    if (values.validate) console.log(`\n${formatValidations(rows)}`);
    const path = await writeResult(
      `train${values.profile ? "-profile" : ""}${values.catalog ? `-${values.catalog}` : ""}`,
      engine.gpu.adapterName,
      {
        data: data.label,
        config: base,
        steps,
        warmup,
        variants: rows,
        peer: peers,
      },
    );
    console.log(`wrote ${path}`);
  } finally {
    engine.destroy();
  }
  return 0;
}

/** One epoch of the peer for full CE, CE- with 256 batch-shared and 256 per-position negatives. */
async function runPeers(script: string, data: string): Promise<PeerFigures[]> {
  const python = await pythonWithTorch();
  if (!python) {
    console.log(
      "peer skipped: PyTorch is not installed " +
        "(apt-get install -y python3-torch python3-numpy libopenblas0-pthread)",
    );
    return [];
  }
  const runs = [
    { label: "peer ce", against: ["ce", "cce", "ce padded"], extra: ["--loss", "ce"] },
    {
      label: "peer ce- 256 shared",
      against: ["ce- 256 shared", "cce- 256 shared", "ce- 256 shared padded"],
      extra: ["--loss", "ce-", "--negatives", "256"],
    },
    {
      // CE- with 256 negatives per position, the CCE- paper's baseline.
      label: "peer ce-pp 256",
      against: ["cce- 256 uniform", "ce- 256 uniform"],
      extra: ["--loss", "ce-pp", "--negatives", "256"],
    },
  ];
  const out: PeerFigures[] = [];
  for (const r of runs) {
    console.log(`${r.label}: one epoch…`);
    const env = peerEnv();
    const res = await new Deno.Command(python, {
      args: [script, data, "--epochs", "1", "--seq", "50", "--dim", "64", ...r.extra],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!res.success) throw new Error(`${r.label} failed (exit ${res.code})`);
    const lines = new TextDecoder().decode(res.stdout).trim().split("\n").map((l) => JSON.parse(l));
    const epoch = lines.find((l) => "epoch_s" in l);
    const summary = lines.find((l) => "users" in l);
    out.push({
      label: r.label,
      against: r.against,
      secondsPerEpoch: epoch.epoch_s,
      sequencesPerSecond: summary.users / epoch.epoch_s,
    });
  }
  return out;
}

if (import.meta.main) await runMain(main);
