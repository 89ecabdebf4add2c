/**
 * `deno task bench:ssl`: training clients/s and peak GPU bytes of each event-sequence objective
 * (CoLES, generative, MLEM) on the synthetic data with the ssl:train defaults; `--peer` trains
 * the PyTorch CoLES peer (bench/peer/torch_coles.py: same GRU, the same slices) in the same run.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { type EventBatch, randomSlices, wholeSequences } from "../src/data/event_batches.ts";
import { eventObjectiveOf } from "../src/loss/event_objectives.ts";
import { EventEncoder, eventFeatureWidth } from "../src/models/event_encoder.ts";
import { seededRandom } from "../src/tensor/random.ts";
import { optimiserStep, PipelinedSteps } from "../src/train/loop.ts";
import { Adam } from "../src/train/optim.ts";
import {
  encoderConfigOf,
  estimateSslFor,
  prepareEvents,
  settingsOf,
  sslLoss,
  SslModel,
} from "../src/train/ssl.ts";
import { SSL_DEFAULTS, type SslConfig } from "../src/train/ssl_config.ts";
import {
  type BlockPartner,
  blockSizes,
  formatRoundRatios,
  formatTable,
  writeResult,
} from "../bench/util.ts";
import { bestMatmulRate } from "../bench/ops.ts";
import { peerEnv, pythonWithTorch, ServingPeer } from "../bench/python.ts";
import { positiveInt, runMain } from "./cli.ts";
import { GRU_CHOICE } from "../src/tensor/ops/gru.ts";

const PEER = fileURLToPath(new URL("../bench/peer/torch_coles.py", import.meta.url));

/** The README's goal for CoLES: at least this fraction of the peer's clients/s. */
const PEER_GOAL = 0.7;

const HELP = `Usage: deno task bench:ssl [flags]

Training clients per second (Adam steps after warm-up, on batches built beforehand) and peak GPU
bytes of CoLES, generative and MLEM with the ssl:train defaults on synthetic data (GRU hidden
${SSL_DEFAULTS.hidden}, ${SSL_DEFAULTS.batchClients} clients a batch, CoLES ${SSL_DEFAULTS.slices} slices of ${SSL_DEFAULTS.minLen}–${SSL_DEFAULTS.maxLen} events, whole
sequences of up to ${SSL_DEFAULTS.seqLen} events otherwise). Writes bench/results/ssl-<adapter>.json.

Flags:
  --steps N     timed steps per method [default: 4]
  --warmup N    untimed steps first [default: 1]
  --methods M   comma-separated objectives to time [default: coles,generative,mlem]
  --gru V[,V]   GRU kernel variants to time each method with, e.g. "lanes 8,tiled 8x8"
                (rows labelled by variant) [default: the adapter's choice]
  --profile     time every kernel (timestamp queries) and print where each step's time goes
  --peer        also train the PyTorch CoLES peer on the same slices, with 1 and 2 threads
                (with coles among the methods); the ratio is against the faster [default: false]
  --rounds N    with --peer: CoLES's timed steps in N blocks, each followed by the same block
                of both peers, so that all sides see the same phases of the machine [default: 4]
  --help        print this help`;

interface PeerFigures {
  clients_per_second: number;
  seconds: number;
  steps: number;
  threads: number;
  /** Seconds of each block, trained right after the same block of ours. */
  block_seconds: number[];
}

interface Row {
  method: string;
  clients_per_second: number;
  seconds_per_step: number;
  /** Seconds of each timed block of steps (one block unless the peer trains in turns). */
  block_seconds: number[];
  peak_bytes: number;
  /** ssl:train's estimate of a step's peak (src/train/ssl_memory.ts). */
  estimate_bytes: number;
  /** The GRU kernel variant it ran. */
  gru?: string;
  /** With --profile: the most expensive kernels, milliseconds and calls per step. */
  kernels?: { kernel: string; ms_per_step: number; calls_per_step: number }[];
  /** With --profile: milliseconds a step in GRU and matmul kernels, all of them. */
  gru_matmul_ms_per_step?: number;
}

/**
 * What CoLES's products cost at the engine's best matmul rate, against the step the goal allows:
 * a step cannot be shorter on this adapter unless its GRU outruns a 1024³ matmul.
 */
interface ArithmeticFloor {
  mflop_per_step: number;
  best_matmul: { product: string; gflops: number };
  arithmetic_ms: number;
  step_ms: number;
  /** The peer's step over PEER_GOAL (with --peer). */
  goal_ms: number | null;
  /** With --profile: the GRU and matmul kernels' milliseconds a step, and their GFLOP/s. */
  kernels_ms: number | null;
  kernels_gflops: number | null;
  /**
   * With --profile and --peer: the GFLOP/s the products would need for the goal if the rest of
   * the step (step_ms - kernels_ms) stayed as it is; null if the rest alone exceeds the goal.
   */
  needed_gflops: number | null;
}

/**
 * FLOPs of a CoLES step's products, padding excluded: the GRU's input and recurrent weights each
 * forward, input gradient and weight gradient (3 · 2 · events · 3·hidden · (width + hidden)),
 * and the slices' similarity matrix forward and its two gradients (3 · 2 · rows² · hidden).
 */
function colesFlops(batches: EventBatch[], width: number, hidden: number): number {
  const each = batches.map((b) => {
    const events = b.lengths.reduce((a, l) => a + l, 0);
    return 18 * events * hidden * (width + hidden) + 6 * b.rows * b.rows * hidden;
  });
  return each.reduce((a, f) => a + f, 0) / each.length;
}

function batchesFor(
  method: string,
  c: SslConfig,
  data: Awaited<ReturnType<typeof prepareEvents>>,
  n: number,
) {
  const r = seededRandom(c.seed);
  const out: EventBatch[] = [];
  // More steps than whole batches in the training split start over from its first clients.
  const whole = Math.max(1, Math.floor(data.split.train.length / c.batchClients));
  for (let i = 0; i < n; i++) {
    const first = (i % whole) * c.batchClients;
    const clients = data.split.train.subarray(first, first + c.batchClients);
    out.push(
      eventObjectiveOf(method).slices
        ? randomSlices(
          data.sequences,
          clients,
          { slices: c.slices, minLen: c.minLen, maxLen: c.maxLen },
          r,
          data.stats,
        )
        : wholeSequences(data.sequences, clients, c.seqLen, data.stats),
    );
  }
  return out;
}

async function benchMethod(
  engine: Engine,
  method: string,
  c: SslConfig,
  batches: EventBatch[],
  warmup: number,
  steps: number,
  partner?: { trainers: BlockPartner[]; blocks: number },
): Promise<Row> {
  const objective = eventObjectiveOf(method);
  const config = encoderConfigOf(c, await prepareEventsCache(c));
  const model = new SslModel(engine, config, objective, c.seed);
  const teacher = objective.teacher ? new EventEncoder(engine, config, c.seed + 7) : null;
  const optimizer = new Adam(model.parameters(), { lr: c.lr });
  try {
    engine.gpu.allocator.resetPeaks();
    const step = (b: EventBatch) =>
      optimiserStep(
        engine,
        model,
        optimizer,
        c.clip,
        () => sslLoss(model, objective, settingsOf(c), teacher, b),
      );
    // As in ssl:train (src/train/ssl.ts): what a step frees, the next (of nearly its shapes) takes.
    const { blockSeconds, clients } = await engine.gpu.allocator.withSteadyShapes(async () => {
      for (let i = 0; i < warmup; i++) await step(batches[i % batches.length]);
      await engine.gpu.sync();
      engine.gpu.profiler?.reset();
      let clients = 0;
      let next = warmup;
      const blockSeconds: number[] = [];
      for (const blockSteps of blockSizes(steps, partner?.blocks ?? 1)) {
        const start = performance.now();
        const timed = new PipelinedSteps<void>(() => {});
        for (let i = 0; i < blockSteps; i++) {
          const b = batches[next++ % batches.length];
          await timed.push(() => step(b));
          clients += new Set(b.clients).size;
        }
        await timed.flush();
        blockSeconds.push((performance.now() - start) / 1000);
        for (const trainer of partner?.trainers ?? []) await trainer.train(blockSteps);
      }
      return { blockSeconds, clients };
    });
    const seconds = blockSeconds.reduce((a, b) => a + b, 0);
    await engine.gpu.sync();
    const report = engine.gpu.profiler?.report();
    return {
      method,
      clients_per_second: clients / seconds,
      seconds_per_step: seconds / steps,
      block_seconds: blockSeconds,
      peak_bytes: engine.gpu.allocator.peakReservedBytes,
      estimate_bytes: estimateSslFor(engine, { ...c, method }, cached!, teacher ? config : null)
        .step,
      kernels: report?.slice(0, 12).map((k) => ({
        kernel: k.kernel,
        ms_per_step: k.totalMs / steps,
        calls_per_step: k.count / steps,
      })),
      gru_matmul_ms_per_step: report && report
            .filter((k) => /^(gru|matmul) /.test(k.kernel))
            .reduce((a, k) => a + k.totalMs, 0) / steps,
    };
  } finally {
    model.dispose();
    teacher?.dispose();
    optimizer.dispose();
  }
}

let cached: Awaited<ReturnType<typeof prepareEvents>> | null = null;
async function prepareEventsCache(c: SslConfig) {
  cached ??= await prepareEvents(c);
  return cached.sequences;
}

/** The batches as the peer reads them (--batches): the same slices, the encoder's shapes. */
async function writePeerBatches(file: string, c: SslConfig, batches: EventBatch[]): Promise<void> {
  const config = encoderConfigOf(c, await prepareEventsCache(c));
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      ...config,
      seed: c.seed,
      lr: c.lr,
      clip: c.clip,
      margin: c.margin,
      negatives: c.hardNegatives,
      batches: batches.map((b) => ({
        rows: b.rows,
        steps: b.steps,
        lengths: [...b.lengths],
        clients: [...b.clients],
        clientCount: new Set(b.clients).size,
        categorical: b.categorical.map((x) => [...x]),
        numeric: [...b.numeric],
      })),
    }),
  );
}

/**
 * The PyTorch CoLES peer at `threads` threads in --serve mode: it warms up as it starts, then
 * trains a block of steps after each of ours (a BlockPartner).
 */
class ColesPeer implements BlockPartner {
  private readonly process: ServingPeer;
  private readonly blockSeconds: number[] = [];

  constructor(python: string, file: string, warmup: number, readonly threads: number) {
    this.process = new ServingPeer(python, PEER, [
      ...["--batches", file, "--warmup", String(warmup), "--threads", String(threads)],
    ], peerEnv(threads));
  }

  ready(): Promise<void> {
    return this.process.ready();
  }

  async train(steps: number): Promise<void> {
    const { seconds } = await this.process.ask(`train ${steps}`);
    if (typeof seconds !== "number") throw new Error("PyTorch peer: a block without seconds");
    this.blockSeconds.push(seconds);
  }

  async finish(): Promise<PeerFigures> {
    await this.ready();
    await this.process.send("done");
    const out = await this.process.next() as unknown as PeerFigures;
    await this.process.close();
    return { ...out, block_seconds: this.blockSeconds };
  }

  kill(): void {
    this.process.kill();
  }
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: "string", default: "4" },
      warmup: { type: "string", default: "1" },
      peer: { type: "boolean", default: false },
      rounds: { type: "string", default: "4" },
      methods: { type: "string", default: "coles,generative,mlem" },
      profile: { type: "boolean", default: false },
      gru: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const steps = positiveInt("--steps", values.steps!);
  const warmup = positiveInt("--warmup", values.warmup!);
  const rounds = positiveInt("--rounds", values.rounds!);
  const c: SslConfig = { ...SSL_DEFAULTS, clients: 1000 };
  const data = cached = await prepareEvents(c);
  const methods = values.methods!.split(",").map((m) => m.trim());
  for (const m of methods) eventObjectiveOf(m);
  const engine = await Engine.create({ profile: values.profile });
  try {
    const rows: Row[] = [];
    const peers: PeerFigures[] = [];
    const slices = batchesFor("coles", c, data, warmup + steps);
    const variants = values.gru
      ? values.gru.split(",").map((v) => GRU_CHOICE.named(v.trim()).name)
      : [GRU_CHOICE.of(engine).name];
    // One and two threads: on a shared machine two can be far slower (a descheduled thread
    // stalls the other); the ratio is taken against the faster, the conservative choice. Both
    // start (and warm up) before anything of ours is timed, then train in turns with CoLES.
    const colesPeers: ColesPeer[] = [];
    let peerFile: string | null = null;
    try {
      if (values.peer && methods.includes("coles")) {
        const python = await pythonWithTorch();
        if (!python) throw new Error("--peer: no Python with torch found");
        peerFile = await Deno.makeTempFile({ suffix: ".json" });
        await writePeerBatches(peerFile, c, slices);
        for (const threads of [1, 2]) {
          colesPeers.push(new ColesPeer(python, peerFile, warmup, threads));
        }
        console.error(`pytorch coles peers (1 and 2 threads): starting, ${warmup} warm-up steps…`);
        await Promise.all(colesPeers.map((p) => p.ready()));
      }
      for (const method of methods) {
        const batches = method === "coles" ? slices : batchesFor(method, c, data, warmup + steps);
        const partner = method === "coles" && colesPeers.length
          ? { trainers: colesPeers, blocks: rounds }
          : undefined;
        for (const variant of variants) {
          GRU_CHOICE.use(engine, variant);
          console.error(
            `${method} (gru ${variant}): ${warmup} + ${steps} steps` +
              (partner ? `, in ${rounds} turns with the peers…` : "…"),
          );
          const row = await benchMethod(engine, method, c, batches, warmup, steps, partner);
          rows.push({ ...row, gru: variant });
        }
      }
      for (const p of colesPeers) peers.push(await p.finish());
    } finally {
      for (const p of colesPeers) p.kill();
      if (peerFile) await Deno.remove(peerFile);
    }
    const peer = peers.length
      ? peers.reduce((a, b) => (b.clients_per_second > a.clients_per_second ? b : a))
      : null;
    const table = formatTable(
      ["method", "clients/s", "s/step", "peak GPU MiB", "estimate MiB", "×peer"],
      [
        ...rows.map((r) => [
          `${r.method} [${r.gru}]`,
          r.clients_per_second,
          r.seconds_per_step,
          r.peak_bytes / 2 ** 20,
          r.estimate_bytes / 2 ** 20,
          peer && r.method === "coles" ? r.clients_per_second / peer.clients_per_second : "-",
        ]),
        ...peers.map((p) => [
          `coles (pytorch, ${p.threads} thread${p.threads > 1 ? "s" : ""})`,
          p.clients_per_second,
          p.seconds / p.steps,
          "-",
          "-",
          p.clients_per_second / peer!.clients_per_second,
        ]),
      ],
    );
    console.log(table);
    const coles = rows.find((r) => r.method === "coles");
    // The same batches on both sides: a round's ratio is the peer's seconds over ours.
    const byRound = peer && coles && formatRoundRatios(coles.block_seconds, peer.block_seconds);
    if (byRound) console.log(`coles: ×peer by round ${byRound}`);
    const floor = coles && c.encoder === "gru"
      ? await arithmeticFloor(engine, c, slices.slice(warmup), coles, peer)
      : null;
    if (floor) console.log(formatFloor(floor));
    if (values.profile) console.log(`\n${formatKernelTables(rows)}`);
    const path = await writeResult(values.profile ? "ssl-profile" : "ssl", engine.gpu.adapterName, {
      settings: { ...c, steps, warmup, rounds: peer ? rounds : 1 },
      rows,
      peer,
      peers,
      floor,
    });
    console.error(`wrote ${path}`);
    return 0;
  } finally {
    engine.destroy();
  }
}

async function arithmeticFloor(
  engine: Engine,
  c: SslConfig,
  timed: EventBatch[],
  coles: Row,
  peer: PeerFigures | null,
): Promise<ArithmeticFloor> {
  console.error("the engine's best matmul rate (1024³ products)…");
  const flops = colesFlops(
    timed,
    eventFeatureWidth(encoderConfigOf(c, cached!.sequences)),
    c.hidden,
  );
  const best = await bestMatmulRate(engine);
  const kernels = coles.gru_matmul_ms_per_step ?? null;
  const goal = peer && (peer.seconds / peer.steps) * 1000 / PEER_GOAL;
  const left = goal !== null && kernels !== null
    ? goal - (coles.seconds_per_step * 1000 - kernels)
    : 0;
  return {
    mflop_per_step: flops / 1e6,
    best_matmul: best,
    arithmetic_ms: flops / best.gflops / 1e6,
    step_ms: coles.seconds_per_step * 1000,
    goal_ms: goal,
    kernels_ms: kernels,
    kernels_gflops: kernels && flops / kernels / 1e6,
    needed_gflops: left > 0 ? flops / left / 1e6 : null,
  };
}

function formatFloor(f: ArithmeticFloor): string {
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  return [
    `coles: ${f.mflop_per_step.toFixed(0)} MFLOP a step in its products (GRU over the events, `,
    `slice similarities); at this run's best matmul rate (1024³ ${f.best_matmul.product}, `,
    `${f.best_matmul.gflops.toFixed(1)} GFLOP/s) they alone take ${ms(f.arithmetic_ms)}; `,
    f.goal_ms === null ? "" : `${PEER_GOAL}× the peer allows ${ms(f.goal_ms)} a step; `,
    `ours took ${ms(f.step_ms)}`,
    f.kernels_ms === null
      ? ""
      : `, ${ms(f.kernels_ms)} of it in GRU and matmul kernels (${
        f.kernels_gflops!.toFixed(1)
      } GFLOP/s)`,
    f.goal_ms === null || f.kernels_ms === null
      ? ""
      : f.needed_gflops === null
      ? "; the rest of the step alone exceeds the goal's"
      : `; with the rest of the step as it is, the goal needs them at ${
        f.needed_gflops.toFixed(1)
      } GFLOP/s`,
  ].join("");
}

/** Per method, where its step's kernel time goes (from --profile). */
function formatKernelTables(rows: Row[]): string {
  return rows.filter((r) => r.kernels).map((r) =>
    `${r.method} [${r.gru}]: ${(r.seconds_per_step * 1000).toFixed(0)} ms/step wall\n` +
    formatTable(
      ["kernel", "ms/step", "calls/step"],
      r.kernels!.map((k) => [k.kernel, k.ms_per_step, k.calls_per_step]),
    )
  ).join("\n\n");
}

if (import.meta.main) await runMain(main);
