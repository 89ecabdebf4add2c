/**
 * Live updates: the events stream of a training run sends the metric rows a writer (playing the
 * trainer, another connection to the same SQLite file) adds, then `end` when the run stops.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/dashboard/app.tsx";
import { serveDashboard } from "../../src/dashboard/serve.ts";
import { LOST_AFTER_SECONDS } from "../../src/store/runs.ts";
import { makeFixture } from "./fixtures.ts";

interface SseEvent {
  event: string;
  id?: string;
  // deno-lint-ignore no-explicit-any
  data: any;
}

/** Reads Server-Sent Events from a response body, skipping comments and `retry` lines. */
class SseReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event, or null when the stream ended. */
  async next(timeoutMs = 10_000): Promise<SseEvent | null> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const cut = this.#buffer.indexOf("\n\n");
      if (cut >= 0) {
        const block = this.#buffer.slice(0, cut);
        this.#buffer = this.#buffer.slice(cut + 2);
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
          const m = /^([a-z]+): ?(.*)$/.exec(line);
          if (m) fields.set(m[1], m[2]);
        }
        if (!fields.has("event")) continue;
        return {
          event: fields.get("event")!,
          id: fields.get("id"),
          data: JSON.parse(fields.get("data")!),
        };
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no event in time")), deadline - Date.now());
      });
      try {
        const { value, done } = await Promise.race([this.#reader.read(), timeout]);
        if (done) return null;
        this.#buffer += value;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

Deno.test("events: rows a writer adds while the run trains, status changes, then end", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  const app = createApp({ runsDir: fx.dir, pollMs: 50, signal: abort.signal });
  const id = fx.ids.running;
  try {
    const metrics = await (await app.request(`/api/runs/${id}/metrics`)).json();
    const res = await app.request(`/api/runs/${id}/events?after=${metrics.cursor}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const sse = new SseReader(res.body!);

    // Nothing new yet: the first event is the run's status.
    const first = await sse.next();
    assert.deepEqual(first, {
      event: "status",
      id: undefined,
      data: { status: "running", bestValidNdcg10: 0.05, peakBytes: 30 * 1024 * 1024, error: null },
    });

    fx.store.addMetrics(id, [
      { epoch: 2, step: 6, key: "train_loss_step", value: 3.1 },
      { epoch: 2, step: 7, key: "train_loss_step", value: 3.0 },
    ]);
    const batch = await sse.next();
    assert.equal(batch!.event, "metrics");
    const untimed = (points: { time: number }[]) => points.map(({ time: _, ...p }) => p);
    assert.deepEqual(untimed(batch!.data.points), [
      { epoch: 2, step: 6, key: "train_loss_step", value: 3.1 },
      { epoch: 2, step: 7, key: "train_loss_step", value: 3.0 },
    ]);
    assert.ok(batch!.data.points.every((p: { time: number }) => p.time > 0));
    assert.equal(batch!.id, String(batch!.data.cursor));
    assert.ok(batch!.data.cursor > metrics.cursor);

    fx.store.addMetrics(id, [{ epoch: 2, step: 8, key: "train_loss", value: 2.9 }]);
    fx.store.update(id, { bestValidNdcg10: 0.08 });
    const more = await sse.next();
    assert.deepEqual(untimed(more!.data.points), [
      { epoch: 2, step: 8, key: "train_loss", value: 2.9 },
    ]);
    const status = await sse.next();
    assert.equal(status!.event, "status");
    assert.equal(status!.data.bestValidNdcg10, 0.08);

    fx.store.addMetrics(id, [{ epoch: 2, step: 8, key: "test_ndcg@10", value: 0.07 }]);
    fx.store.update(id, { status: "finished", wallSeconds: 9, finished: true });
    const events = [];
    for (let e = await sse.next(); e; e = await sse.next()) events.push(e);
    assert.deepEqual(events.map((e) => e.event), ["metrics", "status", "end"]);
    assert.equal(events[0].data.points[0].key, "test_ndcg@10");
    assert.equal(events[1].data.status, "finished");
    assert.deepEqual(events[2].data, { status: "finished" });
  } finally {
    abort.abort();
    await fx.cleanup();
  }
});

Deno.test("events: a reconnect resumes after Last-Event-ID; a finished run ends at once", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  const app = createApp({ runsDir: fx.dir, pollMs: 50, signal: abort.signal });
  try {
    const all = await (await app.request(`/api/runs/${fx.ids.finished}/metrics`)).json();
    const total = Object.values(all.series as Record<string, { value: number[] }>)
      .reduce((n, s) => n + s.value.length, 0);

    // From the start: every row, in write order, then end.
    const full = new SseReader((await app.request(`/api/runs/${fx.ids.finished}/events`)).body!);
    const seen = [];
    for (let e = await full.next(); e; e = await full.next()) seen.push(e);
    assert.deepEqual(seen.map((e) => e.event), ["metrics", "status", "end"]);
    assert.equal(seen[0].data.points.length, total);
    assert.equal(seen[0].data.cursor, all.cursor);

    const resumed = new SseReader(
      (await app.request(`/api/runs/${fx.ids.finished}/events?after=0`, {
        headers: { "last-event-id": String(all.cursor) },
      })).body!,
    );
    const rest = [];
    for (let e = await resumed.next(); e; e = await resumed.next()) rest.push(e.event);
    assert.deepEqual(rest, ["status", "end"]);

    assert.equal((await app.request("/api/runs/20990101-000000-ffffff/events")).status, 404);
    const bad = await app.request(`/api/runs/${fx.ids.finished}/events?after=x`);
    assert.equal(bad.status, 400);
  } finally {
    abort.abort();
    await fx.cleanup();
  }
});

Deno.test("events: a run whose heartbeat stops is lost and its stream ends", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  const app = createApp({ runsDir: fx.dir, pollMs: 50, signal: abort.signal });
  try {
    // Already lost: its rows, its status, then the end, without waiting for anything.
    const lost = new SseReader((await app.request(`/api/runs/${fx.ids.lost}/events`)).body!);
    const seen = [];
    for (let e = await lost.next(); e; e = await lost.next()) seen.push(e);
    assert.deepEqual(seen.map((e) => e.event), ["metrics", "status", "end"]);
    assert.equal(seen[1].data.status, "lost");
    assert.deepEqual(seen[2].data, { status: "lost" });

    // Training, then its process dies: the next poll sees the stale heartbeat and ends.
    const id = fx.ids.running;
    const cursor = (await (await app.request(`/api/runs/${id}/metrics`)).json()).cursor;
    const live = new SseReader((await app.request(`/api/runs/${id}/events?after=${cursor}`)).body!);
    assert.equal((await live.next())!.data.status, "running");
    fx.store.heartbeat(id, new Date(Date.now() - (LOST_AFTER_SECONDS + 1) * 1000));
    const rest = [];
    for (let e = await live.next(); e; e = await live.next()) rest.push(e);
    assert.deepEqual(rest.map((e) => [e.event, e.data.status]), [
      ["status", "lost"],
      ["end", "lost"],
    ]);
  } finally {
    abort.abort();
    await fx.cleanup();
  }
});

Deno.test("events: a client may go away; shutdown ends the streams still open", async () => {
  const fx = await makeFixture();
  const dash = serveDashboard({ runsDir: fx.dir, port: 0, pollMs: 50 });
  try {
    const url = `${dash.url}api/runs/${fx.ids.running}/events`;
    const gone = new SseReader((await fetch(url)).body!);
    assert.equal((await gone.next())!.event, "metrics");
    await gone.cancel();

    const open = new SseReader((await fetch(url)).body!);
    assert.equal((await open.next())!.event, "metrics");
    const started = performance.now();
    const closing = dash.close();
    // The stream ends (the reader sees its end or the connection drop) and close() returns.
    try {
      while (await open.next(5_000));
    } catch (e) {
      assert.ok(!(e as Error).message.includes("no event in time"), String(e));
    }
    await closing;
    assert.ok(performance.now() - started < 5_000);
  } finally {
    await dash.close();
    await fx.cleanup();
  }
});
