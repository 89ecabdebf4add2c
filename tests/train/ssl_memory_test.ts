/**
 * ssl:train's memory estimate against the allocator's reserved peak, within ±25%: training steps
 * and the final embedding pass per method and encoder, and whole runs. The configurations are a
 * few tens of MiB, where the allocator's pool floor (4 MiB of freed buffers kept for reuse) is not
 * most of the figure. A configuration over the budget is refused before anything is allocated.
 */
import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { EventBatches } from "../../src/data/event_batches.ts";
import { eventObjectiveOf } from "../../src/loss/event_objectives.ts";
import { EventEncoder } from "../../src/models/event_encoder.ts";
import { Logger } from "../../src/train/log.ts";
import { optimiserStep } from "../../src/train/loop.ts";
import { MemoryBudgetError } from "../../src/train/memory.ts";
import { Adam } from "../../src/train/optim.ts";
import {
  embedClients,
  encoderConfigOf,
  estimateSslFor,
  prepareEvents,
  settingsOf,
  sslLoss,
  SslModel,
  trainSsl,
} from "../../src/train/ssl.ts";
import { SSL_DEFAULTS, type SslConfig } from "../../src/train/ssl_config.ts";
import { decoderParameters, encoderParameters } from "../../src/train/ssl_memory.ts";
import { gpuTest } from "../support/check.ts";

/** The stated tolerance of the estimate against the allocator's measured peak. */
const TOLERANCE = 0.25;

const CASES: Partial<SslConfig>[] = [
  { method: "coles" },
  { method: "coles", encoder: "transformer", hidden: 32, layers: 2 },
  { method: "generative", hidden: 30 },
  { method: "generative", encoder: "transformer", hidden: 32 },
  { method: "mlem" },
];

function config(over: Partial<SslConfig>): SslConfig {
  return { ...SSL_DEFAULTS, clients: 200, batchClients: 16, ...over };
}

function label(over: Partial<SslConfig>): string {
  return `${over.method} ${over.encoder ?? "gru"} hidden ${over.hidden ?? SSL_DEFAULTS.hidden}`;
}

function assertWithin(estimate: number, measured: number, what: string): void {
  const ratio = estimate / measured;
  assert.ok(
    Math.abs(ratio - 1) <= TOLERANCE,
    `${what}: estimate ${estimate} against measured ${measured} (×${ratio.toFixed(3)})`,
  );
}

for (const over of CASES) {
  gpuTest(
    `${label(over)}: training steps, then the embedding pass, peak within ±25% of the estimate`,
    async (e) => {
      const c = config(over);
      const data = await prepareEvents(c);
      const objective = eventObjectiveOf(c.method);
      const encoder = encoderConfigOf(c, data.sequences);
      const teacher = objective.teacher ? new EventEncoder(e, encoder, 99) : null;
      const estimate = estimateSslFor(e, c, data, teacher ? encoder : null);
      const how = objective.slices
        ? {
          kind: "slices" as const,
          slices: { slices: c.slices, minLen: c.minLen, maxLen: c.maxLen },
        }
        : { kind: "whole" as const, maxLen: c.seqLen };
      const batches = new EventBatches(
        data.sequences,
        data.split.train,
        c.batchClients,
        how,
        data.stats,
        c.seed,
      ).epoch(0)[Symbol.iterator]();
      const al = e.gpu.allocator;
      al.trimPool();
      await e.gpu.sync();
      al.resetPeaks();
      const base = al.reservedBytes;
      const model = new SslModel(e, encoder, objective, c.seed);
      const optimizer = new Adam(model.parameters(), { lr: c.lr });
      try {
        const trained = encoderParameters(encoder) +
          (objective.decoder ? decoderParameters(encoder) : 0) + (objective.teacher ? 2 : 0);
        assert.equal(trained, model.parameters().reduce((n, t) => n + t.size, 0), "parameters");
        for (let i = 0; i < 3; i++) {
          const b = batches.next().value!;
          await optimiserStep(
            e,
            model,
            optimizer,
            c.clip,
            () => sslLoss(model, objective, settingsOf(c), teacher, b),
          );
        }
        assertWithin(estimate.step, al.peakReservedBytes - base, "training steps");
        // The final evaluation embeds every client, with the moments still held.
        const all = Int32Array.from({ length: data.sequences.clientIds.length }, (_, i) => i);
        await embedClients(model.encoder, data, all, c.seqLen);
        assertWithin(estimate.total, al.peakReservedBytes - base, "steps and embedding pass");
      } finally {
        model.dispose();
        optimizer.dispose();
        teacher?.dispose();
      }
    },
  );
}

gpuTest(
  "whole runs of each method peak within ±25% of the estimate their done event reports",
  async (e) => {
    const out = await Deno.makeTempDir();
    try {
      const quiet = new Logger({ json: true, write: () => {}, progress: false });
      let teacher: string | null = null;
      const runs: Partial<SslConfig>[] = [
        { method: "coles" },
        { method: "generative", hidden: 32 },
        { method: "mlem" },
        { method: "coles", encoder: "transformer", hidden: 32 },
      ];
      for (const over of runs) {
        const c = config({
          ...over,
          out,
          epochs: 1,
          teacher: over.method === "mlem" ? teacher : null,
        });
        const r = await trainSsl(e, c, await prepareEvents(c), { logger: quiet });
        assert.equal(r.status, "finished", r.error ?? "");
        teacher ??= r.runId;
        assertWithin(r.estimate.total, r.peakBytes, `${label(over)} run`);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
);

gpuTest(
  "an SSL configuration over the memory budget is refused before anything is written",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const c = config({ out: `${dir}/runs` });
    const data = await prepareEvents(c);
    const al = e.gpu.allocator;
    const saved = al.limitBytes;
    al.limitBytes = 4 << 20;
    const live = al.liveBytes;
    try {
      const quiet = new Logger({ json: true, write: () => {}, progress: false });
      await assert.rejects(() => trainSsl(e, c, data, { logger: quiet }), (err: Error) => {
        assert.ok(err instanceof MemoryBudgetError);
        assert.match(
          err.message,
          /needs an estimated [\d.]+ MiB of GPU memory \(parameters .*\) but the budget is 4\.00 MiB; lower --batch-clients/,
        );
        return true;
      });
      assert.equal(al.liveBytes, live, "nothing allocated");
    } finally {
      al.limitBytes = saved;
    }
    assert.throws(() => Deno.statSync(c.out), Deno.errors.NotFound);
    await Deno.remove(dir, { recursive: true });
  },
);
