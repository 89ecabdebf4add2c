/** `deno task sweep`: trains every combination of list-valued training flags under a memory budget. */
import { parseSweepArgs, SweepArgsError, sweepHelp, sweepTrainHelp } from "../src/sweep/grid.ts";
import { runSweep } from "../src/sweep/runner.ts";
import { exportCsv, formatReport, reportJson } from "../src/sweep/report.ts";
import { runMain } from "./cli.ts";

const HELP = `Usage: deno task sweep [sweep flags] [training flags]

Trains every combination of the training flags given as comma-separated lists, e.g.
  deno task sweep --data Beauty.txt --loss ce- --negatives 32,128,512,2048 \\
    --batch-size 64,256,1024 --memory-budget 4GiB --parallel 2
Each trial runs in its own process and is a run in the run store, linked to the sweep. Trials whose
estimated peak memory exceeds the budget are recorded as "exceeds budget" and not started.
Rerunning the same command resumes the sweep: finished trials are skipped, the others rerun.
SIGINT/SIGTERM stop the running trials and put them back to pending.

--search random --trials N draws N points from the lists and from ranges (--lr 1e-4..1e-2:log,
--negatives 32..2048:log); --search asha stops the worst trials at rungs of epochs (successive
halving). --queue redis://HOST:PORT[/DB] enqueues the trials for \`deno task worker\` processes on
any machine and records what they send back; rerunning the command resumes from the queue.

Exit code: 0 when every trial finished or exceeds the budget, 1 when a trial failed,
2 for a bad command line, 130 when interrupted.

Sweep flags:
${sweepHelp()}

Training flags (any may be a comma-separated list; booleans take true,false):
${sweepTrainHelp()}`;

async function main(args: string[]): Promise<number> {
  let cmd;
  try {
    cmd = parseSweepArgs(args);
  } catch (e) {
    if (!(e instanceof SweepArgsError)) throw e;
    return badCommand(e);
  }
  if (cmd.help) {
    console.log(HELP);
    return 0;
  }
  const abort = new AbortController();
  const onSignal = () => {
    // A second signal means "now": trials still marked running are rerun on resume anyway.
    if (abort.signal.aborted) Deno.exit(130);
    abort.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    let result;
    try {
      result = await runSweep(cmd, { signal: abort.signal });
    } catch (e) {
      // Drawing random points can find the command asks for more than its ranges hold.
      if (!(e instanceof SweepArgsError)) throw e;
      return badCommand(e);
    }
    if (cmd.exportPath) await exportCsv(result.view, cmd.exportPath);
    if (cmd.json) console.log(JSON.stringify({ event: "result", ...reportJson(result.view) }));
    else {
      console.log(`\n${formatReport(result.view)}`);
      if (cmd.exportPath) console.log(`\nwrote ${cmd.exportPath}`);
    }
    if (result.interrupted) return 130;
    return result.view.trials.some((t) => t.status === "failed") ? 1 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

function badCommand(e: SweepArgsError): number {
  console.error(`error: ${e.message}\n(see deno task sweep --help)`);
  return 2;
}

if (import.meta.main) await runMain(main);
