import assert from "node:assert/strict";
import { resolve } from "node:path";
import {
  argsOf,
  defaultSweepName,
  expandGrid,
  gridOf,
  parseSweepArgs,
  planTrials,
  sampleTrials,
  SweepArgsError,
  sweepHelp,
  sweepId,
  sweepTrainHelp,
  trainFlags,
} from "../../src/sweep/grid.ts";
import { parseTrainArgs } from "../../src/train/config.ts";

Deno.test("training flags are read from the trainer with their types", () => {
  const flags = trainFlags();
  assert.equal(flags.get("negatives")?.kind, "number");
  assert.equal(flags.get("batch-size")?.key, "batchSize");
  assert.equal(flags.get("min-rating")?.kind, "number");
  assert.equal(flags.get("log-q")?.kind, "boolean");
  assert.equal(flags.get("loss")?.kind, "string");
  assert.equal(flags.get("catalog")?.kind, "string");
  assert.equal(flags.has("help"), false);
});

Deno.test("list flags become axes, single values fixed flags, sweep flags the sweep's", () => {
  const cmd = parseSweepArgs([
    "--data",
    "d/tiny.txt",
    "--negatives",
    "32,128,512",
    "--batch-size=64,256",
    "--loss",
    "ce-",
    "--log-q",
    "--keep-seen",
    "true,false",
    "--memory-budget",
    "4GiB",
    "--parallel",
    "2",
    "--json",
    "--export",
    "t.csv",
    "--name",
    "n",
    "--out",
    "r",
  ]);
  assert.deepEqual(cmd.axes.map((a) => [a.key, a.values.map((v) => v.value)]), [
    ["negatives", [32, 128, 512]],
    ["batchSize", [64, 256]],
    ["keepSeen", [true, false]],
  ]);
  assert.deepEqual(argsOf(cmd), { data: resolve("d/tiny.txt"), loss: "ce-", logQ: true });
  assert.deepEqual(gridOf(cmd, expandGrid(cmd)), {
    negatives: [32, 128, 512],
    batchSize: [64, 256],
    keepSeen: [true, false],
  });
  assert.equal(cmd.budget, 4 * 1024 ** 3);
  assert.equal(cmd.parallel, 2);
  assert.equal(cmd.json, true);
  assert.equal(cmd.exportPath, "t.csv");
  assert.equal(cmd.name, "n");
  assert.equal(cmd.out, "r");

  const defaults = parseSweepArgs(["--seq-len", "32,64"]);
  assert.deepEqual(
    [defaults.budget, defaults.parallel, defaults.json, defaults.exportPath, defaults.out],
    [null, 1, false, null, "runs"],
  );
  assert.equal(defaultSweepName(defaults), "synthetic-small seq-len");
  assert.equal(defaultSweepName(cmd), "tiny.txt negatives×batch-size×keep-seen");
});

Deno.test("the grid is the cross product, each trial with a canonical key and valid argv", () => {
  const cmd = parseSweepArgs([
    "--negatives",
    "32,128",
    "--batch-size",
    "64,256,1024",
    "--log-q",
    "true,false",
    "--loss",
    "ce-",
  ]);
  const trials = expandGrid(cmd);
  assert.equal(trials.length, 2 * 3 * 2);
  assert.equal(new Set(trials.map((t) => t.key)).size, trials.length);
  // The first axis is outermost; keys sort their flags.
  assert.equal(trials[0].key, "batch-size=64,log-q=true,negatives=32");
  assert.deepEqual(trials[0].params, { negatives: 32, batchSize: 64, logQ: true });
  assert.deepEqual(trials.at(-1)!.params, { negatives: 128, batchSize: 1024, logQ: false });
  for (const t of trials) {
    const config = parseTrainArgs(t.argv).config;
    assert.equal(config.loss, "ce-");
    assert.equal(config.negatives, t.params.negatives);
    assert.equal(config.batchSize, t.params.batchSize);
    assert.equal(config.logQ, t.params.logQ, "a false boolean is the flag left out");
  }
  const single = expandGrid(parseSweepArgs(["--epochs", "1"]));
  assert.deepEqual(single.map((t) => [t.key, t.params, t.argv]), [["", {}, ["--epochs", "1"]]]);
});

Deno.test("the sweep id depends on what is trained, not on flag order or sweep settings", async () => {
  const a = await sweepId(parseSweepArgs(["--negatives", "32,128", "--batch-size", "64,256"]));
  const same = [
    ["--batch-size", "256,64", "--negatives", "128,32"],
    ["--negatives", "32,128", "--batch-size", "64,256", "--parallel", "3", "--name", "x"],
    ["--negatives", "32,128", "--batch-size", "64,256", "--memory-budget", "1GiB", "--json"],
  ];
  for (const args of same) assert.equal(await sweepId(parseSweepArgs(args)), a, args.join(" "));
  const different = [
    ["--negatives", "32,128", "--batch-size", "64,512"],
    ["--negatives", "32,128", "--batch-size", "64,256", "--epochs", "3"],
    ["--negatives", "32,128", "--batch-size", "64"],
  ];
  for (const args of different) assert.notEqual(await sweepId(parseSweepArgs(args)), a);
  assert.match(a, /^sweep-[0-9a-f]{12}$/);
});

Deno.test("bad sweep command lines are refused with the flag named", () => {
  const cases: [string[], RegExp][] = [
    [["--negatives", "32,,128"], /--negatives: empty value/],
    [["--negatives", "32,32"], /--negatives: 32 is listed twice/],
    [["--negatives", "32", "--negatives", "64"], /--negatives is given twice/],
    [["--negativs", "32"], /unknown flag --negativs/],
    [["--negatives"], /--negatives needs a value/],
    [["--negatives", "--dim", "8"], /--negatives needs a value/],
    [["--memory-limit", "1GiB"], /--memory-limit is not a sweep flag.*--memory-budget/],
    [["--resume", "x"], /--resume is not a sweep flag/],
    [["--parallel", "0"], /--parallel must be a whole number ≥ 1/],
    [["--memory-budget", "lots"], /--memory-budget: not a byte size/],
    [["--json=yes"], /--json takes no value/],
    [["--log-q=maybe"], /--log-q: "maybe" is not true, false/],
    [["negatives"], /unexpected argument "negatives"/],
    [["--lr", "1e-4..1e-2:log"], /--lr 1e-4\.\.1e-2:log is a range: .*--search random or asha/],
    [["--lr", "1e-2..1e-4", "--search", "random", "--trials", "2"], /--lr: range .*HIGH/],
    [
      ["--lr", "0..1:log", "--search", "random", "--trials", "2"],
      /--lr: .*:log range needs LOW > 0/,
    ],
    [["--lr", "a..b", "--search", "random", "--trials", "2"], /--lr: "a\.\.b" is not a range/],
    [["--search", "bayes"], /--search: "bayes" is not a search \(allowed: grid, random, asha\)/],
    [["--search", "random"], /--search random needs --trials N/],
    [["--trials", "4"], /--trials is for --search random or asha/],
    [["--eta", "2"], /--eta is for --search asha/],
    [["--search", "asha", "--eta", "1"], /--eta must be a whole number ≥ 2/],
    [["--queue", "redis://h:1", "--parallel", "2"], /--parallel .*--concurrency/],
    [["--attempts", "3"], /--attempts is for --queue/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(() => parseSweepArgs(args), (e: Error) => {
      assert.ok(e instanceof SweepArgsError, `${args.join(" ")}: ${e}`);
      assert.match(e.message, pattern);
      return true;
    });
  }
  // A value the trainer rejects is not a command error: that trial fails, the others run.
  const cmd = parseSweepArgs(["--dropout", "0.1,1.5"]);
  assert.deepEqual(expandGrid(cmd).map((t) => t.params.dropout), [0.1, 1.5]);
});

Deno.test("--help documents every sweep flag and the sweepable training flags with defaults", () => {
  const help = sweepHelp();
  const flags = ["memory-budget", "parallel", "json", "export", "name", "out", "help"];
  for (const flag of [...flags, "search", "trials", "search-seed", "eta", "min-epochs", "queue"]) {
    assert.match(help, new RegExp(`--${flag} .*\\[default: [^\\]]+\\]`), flag);
  }
  assert.match(help, /--memory-budget .*\[default: the device limit\]/);
  assert.match(help, /--parallel .*\[default: 1\]/);
  assert.match(help, /--out .*\[default: runs\]/);
  const train = sweepTrainHelp();
  assert.match(train, /--negatives .*\[default: 256\]/);
  for (const own of ["memory-limit", "resume", "out", "name", "json", "help"]) {
    assert.doesNotMatch(train, new RegExp(`^ {2}--${own} `, "m"), own);
  }
});

Deno.test("random search: ranges and lists sampled, distinct, the same for the same seed", async () => {
  const args = [
    ...["--search", "random", "--trials", "6", "--lr", "1e-4..1e-2:log"],
    ...["--negatives", "32..2048:log", "--dropout", "0.1..0.5", "--loss", "ce-,cce-"],
  ];
  const cmd = parseSweepArgs(args);
  assert.deepEqual(cmd.ranges.map((r) => [r.flag, r.range]), [
    ["lr", { low: 1e-4, high: 1e-2, log: true, integer: false }],
    ["negatives", { low: 32, high: 2048, log: true, integer: true }],
    ["dropout", { low: 0.1, high: 0.5, log: false, integer: false }],
  ]);
  const trials = planTrials(cmd);
  assert.equal(trials.length, 6);
  assert.equal(new Set(trials.map((t) => t.key)).size, 6);
  for (const t of trials) {
    const c = parseTrainArgs(t.argv).config;
    assert.ok(c.lr >= 1e-4 && c.lr <= 1e-2, `lr ${c.lr}`);
    assert.ok(Number.isInteger(c.negatives) && c.negatives >= 32 && c.negatives <= 2048);
    assert.ok(c.dropout >= 0.1 && c.dropout <= 0.5);
    assert.ok(["ce-", "cce-"].includes(c.loss));
    assert.deepEqual(t.params, {
      loss: c.loss,
      lr: c.lr,
      negatives: c.negatives,
      dropout: c.dropout,
    });
    assert.match(t.key, /^dropout=[\d.]+,loss=c?ce-,lr=[\d.e-]+,negatives=\d+$/);
  }
  assert.deepEqual(sampleTrials(parseSweepArgs(args)), trials, "the same command, the same points");
  const other = parseSweepArgs([...args, "--search-seed", "1"]);
  assert.notDeepEqual(planTrials(other), trials);
  assert.notEqual(await sweepId(other), await sweepId(cmd));
  // The grid column holds the values drawn, so a table of the trials has its axes.
  assert.deepEqual(
    gridOf(cmd, trials).negatives,
    [...new Set(trials.map((t) => t.params.negatives))].sort((a, b) => (a < b ? -1 : 1)),
  );
  assert.equal(defaultSweepName(cmd), "synthetic-small loss×lr×negatives×dropout");
  // A space smaller than --trials is refused, naming both.
  assert.throws(
    () => planTrials(parseSweepArgs(["--search", "random", "--trials", "5", "--heads", "1..2"])),
    /--trials 5: the ranges and lists give only 2 distinct trials/,
  );
});

Deno.test("asha keeps the grid (or random points) and its own sweep id", async () => {
  const grid = ["--lr", "0.01,0.001"];
  const asha = parseSweepArgs([...grid, "--search", "asha", "--eta", "2", "--min-epochs", "2"]);
  assert.deepEqual([asha.search, asha.eta, asha.minEpochs, asha.trials], ["asha", 2, 2, null]);
  assert.deepEqual(planTrials(asha), expandGrid(parseSweepArgs(grid)));
  assert.notEqual(await sweepId(asha), await sweepId(parseSweepArgs(grid)));
  const queued = parseSweepArgs([
    ...grid,
    "--queue",
    "redis://127.0.0.1:6379/2",
    "--attempts",
    "3",
  ]);
  assert.deepEqual([queued.queue, queued.attempts], ["redis://127.0.0.1:6379/2", 3]);
  assert.equal(
    await sweepId(queued),
    await sweepId(parseSweepArgs(grid)),
    "where trials run is not part of what is trained: a local sweep resumes on a queue",
  );
});
