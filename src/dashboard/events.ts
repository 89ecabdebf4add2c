/**
 * Server-Sent Events for a run page: the trainer is another process that writes to SQLite, so
 * the stream polls the store and sends only rows newer than the last rowid it sent. Events:
 * `metrics` ({cursor, points}), `status` (the run's status and headline figures when they
 * change) and `end` once the run stopped training and every row was sent.
 */
import type { StoreReader } from "../store/read.ts";
import { getRunView, type RunView } from "./runs.ts";

/** Rows per `metrics` event: a client that reconnects far behind catches up in pieces. */
const BATCH = 5000;
/** A comment line this often keeps idle connections (and proxies) open. */
const HEARTBEAT_MS = 15_000;

export interface EventOptions {
  reader: StoreReader;
  runId: string;
  /** Send rows after this rowid (from `/api/runs/:id/metrics` or `Last-Event-ID`). */
  after: number;
  pollMs: number;
  /** Closes the stream (the server is shutting down). */
  signal?: AbortSignal;
}

export function runEvents(opts: EventOptions): ReadableStream<Uint8Array> {
  const { reader, runId, pollMs } = opts;
  const encoder = new TextEncoder();
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  let cursor = opts.after;
  let lastStatus = "";
  let idleSince = Date.now();
  let first = true;

  const message = (event: string, payload: unknown, id?: number) =>
    `event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(payload)}\n\n`;

  /** One poll: the text to send now ("" when nothing changed) and whether the run is over. */
  const poll = async (): Promise<{ text: string; done: boolean }> => {
    const run = await getRunView(reader, runId);
    if (!run) return { text: message("end", { status: "deleted" }), done: true };
    // Status first, rows second: a run seen as over has written all its rows by then. A lost run
    // is over too: its process is gone and nothing more will come.
    const over = run.status !== "running";
    const rows = await reader.metricRows(runId, { after: cursor, limit: BATCH });
    let text = first ? "retry: 2000\n\n" : "";
    first = false;
    if (rows.length) {
      cursor = rows[rows.length - 1].rowid;
      const points = rows.map(({ epoch, step, key, value, recordedAt }) => ({
        epoch,
        step,
        key,
        value,
        time: recordedAt,
      }));
      text += message("metrics", { cursor, points }, cursor);
    }
    const status = statusOf(run);
    const statusText = JSON.stringify(status);
    if (statusText !== lastStatus) {
      lastStatus = statusText;
      text += message("status", status);
    }
    const done = over && rows.length < BATCH;
    if (done) text += message("end", { status: run.status });
    return { text, done };
  };

  const finish = () => opts.signal?.removeEventListener("abort", onOuterAbort);

  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (!stop.signal.aborted) {
        const { text, done } = await poll();
        const beat = !text && Date.now() - idleSince >= HEARTBEAT_MS;
        if (text || beat) {
          idleSince = Date.now();
          controller.enqueue(encoder.encode(text || ": heartbeat\n\n"));
        }
        if (done) break;
        if (text || beat) return;
        await sleep(pollMs, stop.signal);
      }
      finish();
      if (!cancelled) controller.close();
    },
    cancel() {
      cancelled = true;
      stop.abort();
      finish();
    },
  });
}

function statusOf(run: RunView) {
  return {
    status: run.status,
    bestValidNdcg10: run.bestValidNdcg10,
    peakBytes: run.peakBytes,
    error: run.error,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
