/** `deno task serve`: the dashboard of a runs folder, in a browser. */
import { parseArgs } from "node:util";
import { DEFAULT_HOST, DEFAULT_PORT, isLoopback, serveDashboard } from "../src/dashboard/serve.ts";
import { isPostgresUrl, storeLabel } from "../src/store/open.ts";
import { runMain } from "./cli.ts";

const HELP = `Usage: deno task serve [flags]

Serves the dashboard of a runs folder: runs, live training curves, sweeps, memory.

Flags:
  --port   TCP port (0: any free port) [default: ${DEFAULT_PORT}]
  --runs   runs folder holding runs.sqlite and the checkpoints [default: runs]
  --store  read the runs of this PostgreSQL store instead: postgres://USER@HOST:PORT/DB
  --host   address to bind; anything but loopback exposes your runs to the network [default: ${DEFAULT_HOST}]
  --help   print this help`;

async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: "string", default: String(DEFAULT_PORT) },
        runs: { type: "string", default: "runs" },
        store: { type: "string" },
        host: { type: "string", default: DEFAULT_HOST },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n(see deno task serve --help)`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    console.error(`error: --port must be a port number, got "${values.port}"`);
    return 2;
  }
  const store = values.store ?? null;
  if (store !== null && !isPostgresUrl(store)) {
    console.error(`error: --store must be postgres://USER@HOST:PORT/DB, got "${store}"`);
    return 2;
  }
  const runsDir = values.runs.replace(/\/+$/, "") || "/";
  const dashboard = serveDashboard({ runsDir, store, port, host: values.host });
  console.log(
    `dashboard: ${dashboard.url} (runs: ${storeLabel(runsDir, store)}; Ctrl-C stops it)`,
  );
  if (!isLoopback(values.host)) {
    console.log(`warning: bound to ${values.host}: anyone who can reach it can read these runs`);
  }
  const stopped = Promise.withResolvers<void>();
  const onSignal = () => stopped.resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await stopped.promise;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  await dashboard.close();
  return 0;
}

if (import.meta.main) await runMain(main);
