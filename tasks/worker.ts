/** `deno task worker`: runs sweep trials from a queue (see `deno task sweep --queue`). */
import { parseArgs } from "node:util";
import { parseBytes } from "../src/gpu/allocator.ts";
import { checkStoreUrl } from "../src/store/open.ts";
import { runWorker } from "../src/sweep/worker.ts";
import { positiveInt, positiveNumber, runMain } from "./cli.ts";

const HELP = `Usage: deno task worker --queue redis://HOST:PORT[/DB] [flags]

Takes trials from the queue that \`deno task sweep --queue\` fills and runs each in its own process,
as a local sweep does; the outcome, the run's record and its metrics go back to the sweep, which
records them in its run store. Start as many workers, on as many machines, as you like; each trial
runs once. A worker killed mid-trial has its trial run again by another after --lease.
SIGINT/SIGTERM stop the running trials and put them back on the queue.

Flags:
  --queue URL          redis://HOST:PORT[/DB] of the sweep's queue [required]
  --concurrency N      trials run at once, each in its own process [default: 1]
  --memory-budget B    GPU memory this worker's trials may take together by their estimates,
                       e.g. 4GiB; a trial that does not fit is left for another worker [default: none]
  --artifacts DIR      runs folder for the trials' store and checkpoints; a shared folder keeps the
                       checkpoints where the sweep can read them [default: runs]
  --store URL          postgres://USER@HOST:PORT/DB: trials record their runs in this PostgreSQL
                       store (the sweep's --store) [default: <artifacts>/runs.sqlite]
  --lease SECONDS      how long a trial of a worker that died waits before it runs elsewhere; the
                       lock is renewed every lease/2 while it runs [default: 30]
  --name NAME          how the sweep's store names this worker [default: <hostname>:<pid>]
  --json               progress as JSON lines
  --help               print this help`;

async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        queue: { type: "string" },
        concurrency: { type: "string", default: "1" },
        "memory-budget": { type: "string" },
        artifacts: { type: "string", default: "runs" },
        store: { type: "string" },
        lease: { type: "string", default: "30" },
        name: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n(see deno task worker --help)`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.queue) {
    console.error(
      "error: --queue redis://HOST:PORT[/DB] is required (see deno task worker --help)",
    );
    return 2;
  }
  let concurrency, leaseSeconds, budget = null;
  try {
    concurrency = positiveInt("--concurrency", values.concurrency);
    leaseSeconds = positiveNumber("--lease", values.lease);
    if (values.store !== undefined) checkStoreUrl(values.store);
    if (values["memory-budget"] !== undefined) {
      budget = parseBytes(values["memory-budget"]);
      if (!(budget > 0)) throw new Error("must be more than 0 bytes");
    }
  } catch (e) {
    const message = (e as Error).message;
    console.error(
      `error: ${message.startsWith("--") ? message : `--memory-budget: ${message}`}\n` +
        "(see deno task worker --help)",
    );
    return 2;
  }
  const abort = new AbortController();
  const onSignal = () => {
    // A second signal means "now": the jobs of trials still running come back after the lease.
    if (abort.signal.aborted) Deno.exit(130);
    abort.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await runWorker({
      queue: values.queue,
      concurrency,
      budget,
      artifacts: values.artifacts,
      store: values.store ?? null,
      leaseMs: leaseSeconds * 1000,
      name: values.name ?? `${Deno.hostname()}:${Deno.pid}`,
      json: values.json,
      signal: abort.signal,
    });
    return abort.signal.aborted ? 130 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) await runMain(main);
