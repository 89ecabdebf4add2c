/** `deno task bench:queue`: a sweep's wall time locally and on a Redis queue with 1, 2, 3 workers. */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { acquireDevice } from "../src/gpu/device.ts";
import { compareToLocal, type QueueMode, runQueueBenchmark } from "../bench/queue.ts";
import { formatTable, writeResult } from "../bench/util.ts";
import { positiveInt, runMain } from "./cli.ts";

const BEAUTY = fileURLToPath(new URL("../data/Beauty.txt", import.meta.url));

/** 12 trials of the default SASRec configuration: 3 learning rates × 2 dropouts × 2 seeds. */
const GRID = ["--lr", "5e-4,1e-3,2e-3", "--dropout", "0.2,0.3", "--seed", "0,1"];

const HELP = `Usage: deno task bench:queue [flags]

Runs one 12-trial sweep (${GRID.join(" ")}, the default SASRec configuration otherwise) on the
first --users users of Beauty, locally (--parallel 1) and on a Redis queue with each number of
worker processes in --workers (each --concurrency 1, all on this machine, sharing its cores), every
mode in fresh folders with its own redis-server (which must be installed). Prints wall time,
trials/hour, and the wall time per trial beyond the local run; writes
bench/results/queue-<adapter>.json.

Flags:
  --data PATH     sequence file, one user per line [default: ${BEAUTY}]
  --users N       train on the file's first N users (all: 0) [default: 500]
  --epochs N      epochs per trial [default: 1]
  --workers LIST  worker counts to time on the queue [default: 1,2,3]
  --help          print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string", default: BEAUTY },
      users: { type: "string", default: "500" },
      epochs: { type: "string", default: "1" },
      workers: { type: "string", default: "1,2,3" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const users = values.users === "0" ? 0 : positiveInt("--users", values.users);
  const epochs = positiveInt("--epochs", values.epochs);
  const workerCounts = values.workers.split(",").map((w) => positiveInt("--workers", w.trim()));
  const acquired = await acquireDevice({ timestamps: false });
  const adapter = acquired.adapterName;
  acquired.device.destroy();

  const workDir = await Deno.makeTempDir({ prefix: "cutrec-bench-queue-" });
  try {
    const data = await sample(values.data, users, workDir);
    const sweepArgs = [
      ...["--data", data, "--epochs", String(epochs), ...GRID],
      // Given, so that no mode spends time asking the adapter for its limit.
      ...["--memory-budget", "2GiB", "--name", "bench-queue"],
    ];
    const modes: QueueMode[] = [
      { kind: "local", processes: 1 },
      ...workerCounts.map((n): QueueMode => ({ kind: "queue", processes: n })),
    ];
    const figures = compareToLocal(
      await runQueueBenchmark({ sweepArgs, modes, workDir, log: (l) => console.log(l) }),
    );
    console.log(
      "\n" + formatTable(
        ["mode", "wall s", "trials/hour", "s/trial beyond local", "speed-up", "run s (median)"],
        figures.map((f) => [
          f.label,
          f.wallSeconds,
          f.trialsPerHour,
          f.overheadPerTrialSeconds,
          f.speedup,
          f.medianRunSeconds,
        ]),
      ),
    );
    const path = await writeResult("queue", adapter, {
      data: values.data,
      users,
      epochs,
      sweep: sweepArgs.map((a) => (a === data ? "<sample>" : a)),
      modes: figures,
    });
    console.log(`\nwrote ${path}`);
    return 0;
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
}

/** The first `users` lines of the sequence file (all of it for 0), in the work folder. */
async function sample(path: string, users: number, dir: string): Promise<string> {
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim());
  const out = `${dir}/${path.split("/").at(-1)!.replace(/\.txt$/, "")}-${users || "all"}.txt`;
  await Deno.writeTextFile(out, (users ? lines.slice(0, users) : lines).join("\n") + "\n");
  return out;
}

if (import.meta.main) await runMain(main);
