/** `deno task ssl:eval`: probes an event-sequence run's frozen client embeddings. */
import { parseArgs } from "node:util";
import {
  evaluateEmbeddings,
  loadSslRun,
  prepareEvents,
  saveClientEmbeddings,
} from "../src/train/ssl.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

const HELP = `Usage: deno task ssl:eval --run ID [flags]

Embeds every client of an event-sequence run's data with its best checkpoint (frozen), and
reports a logistic-regression probe (train+valid → test, and 5-fold cross-validation), kNN
accuracy (k = 5, cosine) and anisotropy, beside the same figures for a random encoder of the
same shape. Writes the embeddings to the run folder (embeddings-clients.f32/.json).

Flags:
  --run ID     run id (a folder under --out) [required]
  --out DIR    runs folder [default: runs]
  --json       print one JSON line
  --help       print this help`;

const fmt = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(4));

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      run: { type: "string" },
      out: { type: "string", default: "runs" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.run) {
    console.error("error: --run is required (see deno task ssl:eval --help)");
    return 2;
  }
  const engine = await Engine.create();
  try {
    const { model, run } = await loadSslRun(engine, values.out, values.run);
    try {
      const data = await prepareEvents(run);
      const { vectors, groups } = await evaluateEmbeddings(model, data, run);
      saveClientEmbeddings(`${values.out}/${values.run}`, vectors, data);
      if (values.json) {
        console.log(JSON.stringify({ run: values.run, method: run.method, ...groups }));
        return 0;
      }
      console.log(
        `run ${values.run} (${run.method}, ${data.label}, ${vectors.n} clients, dim ${vectors.dim})`,
      );
      console.log("encoder   probe_acc  cv_acc (±std)     knn_acc   anisotropy");
      for (const [name, m] of Object.entries({ trained: groups.test, random: groups.random })) {
        console.log(
          `${name.padEnd(9)} ${fmt(m.probe_accuracy)}     ${fmt(m.cv_accuracy)} (±${
            fmt(m.cv_std)
          })  ${fmt(m.knn_accuracy)}    ${fmt(m.anisotropy)}`,
        );
      }
      return 0;
    } finally {
      model.dispose();
    }
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
