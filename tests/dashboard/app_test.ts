/** Route tests: every page and API answer through `app.request()` on a fixture runs folder. */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../src/dashboard/app.tsx";
import { RunStore } from "../../src/store/runs.ts";
import { SweepStore } from "../../src/store/sweeps.ts";
import { trialsCsv } from "../../src/sweep/report.ts";
import { type Fixture, HOSTILE_CONFIG, HOSTILE_NAME, makeFixture, MiB } from "./fixtures.ts";

async function withApp(fn: (app: Hono, fx: Fixture) => Promise<void>): Promise<void> {
  const fx = await makeFixture();
  const abort = new AbortController();
  try {
    await fn(createApp({ runsDir: fx.dir, signal: abort.signal }), fx);
  } finally {
    abort.abort();
    await fx.cleanup();
  }
}

async function html(res: Response, status = 200): Promise<string> {
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type")!, /^text\/html/);
  return await res.text();
}

// deno-lint-ignore no-explicit-any
async function json(res: Response, status = 200): Promise<any> {
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type")!, /^application\/json/);
  return await res.json();
}

/** The text of each `<td>` of a table row that starts with `first`. */
function rowOf(page: string, first: string): string[] {
  const row = page.split("<tr").find((r) => r.includes(first))!;
  assert.ok(row, `no row with ${first}`);
  return [...row.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => m[1].replace(/<[^>]+>/g, ""));
}

Deno.test("runs list: every run with its figures, sweeps linked, security headers", async () => {
  await withApp(async (app, fx) => {
    const res = await app.request("/");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.match(res.headers.get("content-security-policy")!, /script-src 'self'/);
    const page = await html(res);
    assert.match(page, /^<!doctype html>/);
    assert.match(page, /11 of 11 runs/);
    const ce = rowOf(page, `value="${fx.ids.finished}"`);
    assert.deepEqual(ce.slice(2), [
      "finished",
      "synthetic-small",
      "ce",
      "full softmax",
      "128",
      "0.3100",
      "120 MiB",
      "5 min 00 s",
      ce[10],
    ]);
    const sampled = rowOf(page, `value="${fx.ids.sampled}"`);
    assert.deepEqual(sampled.slice(4, 10), [
      "ce-",
      "128 uniform",
      "256",
      "0.2700",
      "60.0 MiB",
      "1 min 35 s",
    ]);
    assert.match(page, new RegExp(`href="/runs/${fx.ids.running}"`));
    assert.match(page, new RegExp(`href="/sweeps/${fx.ids.sweep}"`));
    assert.match(page, /4 \/ 6/);
  });
});

Deno.test("runs list and /api/runs: filter and sort through query parameters", async () => {
  await withApp(async (app, fx) => {
    const names = async (query: string) =>
      (await json(await app.request(`/api/runs${query}`))).runs.map((r: { id: string }) => r.id);
    assert.deepEqual(await names("?status=failed"), [
      "20261129-110100-s00005",
      fx.ids.failed,
    ]);
    assert.deepEqual(await names("?q=GBCE"), [fx.ids.failed]);
    assert.deepEqual(await names("?loss=ce"), [fx.ids.finished]);
    const byNdcg = await names("?sort=ndcg&dir=desc");
    assert.equal(byNdcg[0], fx.ids.finished);
    // Runs without a validation NDCG sort last in both directions.
    assert.deepEqual(byNdcg.slice(-2).sort(), ["20261129-110100-s00005", fx.ids.failed].sort());
    const asc = await names("?sort=ndcg&dir=asc");
    assert.equal(asc[0], fx.ids.running);
    assert.deepEqual(asc.slice(-2).sort(), byNdcg.slice(-2).sort());
    const byPeak = await names("?sort=peak&dir=asc");
    assert.equal(byPeak[0], "20261129-110100-s00001");
    // Unknown sort columns fall back to newest first.
    assert.deepEqual(await names("?sort=evil&dir=sideways"), await names(""));

    const page = await html(await app.request("/?status=failed&sort=name&dir=asc"));
    assert.match(page, /2 of 11 runs/);
    assert.match(page, /<option value="failed" selected/);
    // The active column's link flips the direction (descending is the default, so it is left out).
    assert.match(page, /aria-sort="ascending"><a href="\/\?status=failed&amp;sort=name">run ▲/);
  });
});

Deno.test("/api/runs: the list's JSON", async () => {
  await withApp(async (app, fx) => {
    const body = await json(await app.request("/api/runs"));
    assert.equal(body.total, 11);
    const run = body.runs.find((r: { id: string }) => r.id === fx.ids.sampled);
    assert.deepEqual(
      { ...run, createdAt: undefined, finishedAt: undefined, heartbeatAt: undefined },
      {
        id: fx.ids.sampled,
        name: "beauty-ce-",
        status: "finished",
        dataset: "synthetic-small",
        config: run.config,
        loss: "ce-",
        objective: "128 uniform",
        negatives: 128,
        batchSize: 256,
        bestValidNdcg10: 0.27,
        peakBytes: 60 * MiB,
        wallSeconds: 95,
        durationSeconds: 95,
        createdAt: undefined,
        finishedAt: undefined,
        heartbeatAt: undefined,
        checkpoint: null,
        sweepId: null,
        error: null,
        tags: [],
        note: "",
        archivedAt: null,
      },
    );
    assert.equal(run.config.negatives, 128);
    const live = body.runs.find((r: { id: string }) => r.id === fx.ids.running);
    // While it trains, the peak is the highest per-epoch peak so far.
    assert.equal(live.peakBytes, 30 * MiB);
    assert.ok(live.durationSeconds >= 0);
  });
});

Deno.test("run page: config, final metrics, epochs, chart figures", async () => {
  await withApp(async (app, fx) => {
    const page = await html(await app.request(`/runs/${fx.ids.finished}`));
    assert.match(page, /<h1>beauty-ce <span class="badge status-finished"/);
    assert.doesNotMatch(page, /data-live=/);
    assert.match(page, /<th>lr<\/th><td>0.001<\/td>/);
    assert.match(page, /<script src="\/static\/uPlot.iife.min.js">/);
    for (const key of ["train_loss_step", "train_loss", "valid_{metric}", "peak_bytes"]) {
      assert.match(page, new RegExp(`data-chart="[^"]*&quot;key&quot;:&quot;${key}&quot;`));
    }
    // Series carry what the x axes need: the batch size and the run's start.
    assert.match(page, /&quot;batch&quot;:128,&quot;start&quot;:\d+/);
    // Test against MostPop at a glance: 0.31 × 0.95 against 0.027.
    assert.match(
      page,
      /<dd data-field="versus">0.2945 <span class="vs">vs 0.0270<\/span> <span class="ratio">\(10.9×\)/,
    );
    // Final table: NDCG row of the test split, 0.31 × 0.95 at @10.
    const testNdcg = rowOf(page, "<td></td><td>NDCG</td>");
    assert.ok(testNdcg.length);
    assert.match(page, /<td>test<\/td><td>HR<\/td>/);
    assert.match(page, /<td>MostPop test<\/td>/);
    assert.match(page, /<td class="num">0.2945<\/td>/);
    assert.equal(page.match(/<tr><td class="num">\d<\/td><td class="num">\d+<\/td>/g)!.length, 3);
    assert.deepEqual(rowOf(page, '<td class="num">3</td><td class="num">30</td>').slice(3, 6), [
      "0.3100",
      "0.4960",
      "120 MiB",
    ]);
  });
});

Deno.test("run page: a training run is live, a failed run shows its error", async () => {
  await withApp(async (app, fx) => {
    const live = await html(await app.request(`/runs/${fx.ids.running}`));
    assert.match(live, new RegExp(`<body data-live="${fx.ids.running}">`));
    assert.match(live, /<span data-field="epochs">1<\/span>/);
    const failed = await html(await app.request(`/runs/${fx.ids.failed}`));
    assert.match(failed, /<p class="error">loss became NaN at epoch 1, step 3<\/p>/);
    assert.match(failed, /No epoch finished yet/);
    const inSweep = await html(await app.request("/runs/20261129-110100-s00003"));
    assert.match(inSweep, new RegExp(`sweep <a href="/sweeps/${fx.ids.sweep}">`));
  });
});

Deno.test("run names and config strings render as text", async () => {
  await withApp(async (app, fx) => {
    for (
      const path of [
        "/",
        `/runs/${fx.ids.running}`,
        `/compare?ids=${fx.ids.running},${fx.ids.failed}`,
      ]
    ) {
      const page = await html(await app.request(path));
      assert.ok(!page.includes(HOSTILE_NAME), path);
      assert.ok(page.includes("&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;"), path);
      // The only scripts are the app's own files.
      for (const m of page.matchAll(/<script[^>]*>/g)) {
        assert.match(
          m[0],
          /^<script (src="\/static\/uPlot\.iife\.min\.js"|type="module" src="\/static\/dashboard\.js")>$/,
        );
      }
    }
    const page = await html(await app.request(`/runs/${fx.ids.running}`));
    assert.ok(!page.includes(HOSTILE_CONFIG));
    assert.ok(page.includes("&lt;img src=x onerror=alert(1)&gt;"));
    const body = await json(await app.request(`/api/runs/${fx.ids.running}`));
    assert.equal(body.run.name, HOSTILE_NAME);
    assert.equal(body.run.config.data, HOSTILE_CONFIG);
  });
});

Deno.test("/api/runs/:id: run, epochs, final metrics", async () => {
  await withApp(async (app, fx) => {
    const body = await json(await app.request(`/api/runs/${fx.ids.finished}`));
    assert.equal(body.run.id, fx.ids.finished);
    assert.equal(body.run.config.loss, "ce");
    assert.equal(body.run.wallSeconds, 300);
    assert.equal(body.epochs.length, 3);
    assert.deepEqual(Object.keys(body.epochs[0]).sort(), [
      "epoch",
      "peakBytes",
      "seconds",
      "step",
      "trainLoss",
      "validHr10",
      "validNdcg10",
    ]);
    assert.equal(body.final.bestEpoch, 3);
    assert.equal(Object.keys(body.final.test).length, 20);
    assert.ok(Math.abs(body.final.test["ndcg@10"] - 0.2945) < 1e-9);
    assert.ok(Math.abs(body.final.valid["ndcg@10"] - 0.31) < 1e-9);
    assert.ok(Math.abs(body.final.mostpopTest["ndcg@10"] - 0.027) < 1e-9);
  });
});

Deno.test("/api/runs/:id/metrics: columnar series, key filter and cursor", async () => {
  await withApp(async (app, fx) => {
    const all = await json(await app.request(`/api/runs/${fx.ids.finished}/metrics`));
    assert.equal(all.runId, fx.ids.finished);
    assert.equal(all.series.train_loss_step.step.length, 30);
    assert.deepEqual(all.series.train_loss.epoch, [1, 2, 3]);
    assert.deepEqual(all.series.train_loss.step, [10, 20, 30]);
    assert.equal(all.series.peak_bytes.value.length, 3);
    assert.ok(all.cursor > 0);

    const some = await json(
      await app.request(`/api/runs/${fx.ids.finished}/metrics?keys=train_loss,peak_bytes`),
    );
    assert.deepEqual(Object.keys(some.series).sort(), ["peak_bytes", "train_loss"]);
    assert.equal(some.cursor, all.cursor);

    const none = await json(
      await app.request(`/api/runs/${fx.ids.finished}/metrics?after=${all.cursor}`),
    );
    assert.deepEqual(none.series, {});
    await fx.store.addMetrics(fx.ids.finished, [{ epoch: 3, step: 30, key: "extra", value: 1 }]);
    const more = await json(
      await app.request(`/api/runs/${fx.ids.finished}/metrics?after=${all.cursor}`),
    );
    assert.deepEqual(Object.keys(more.series), ["extra"]);
    const { time, ...extra } = more.series.extra;
    assert.deepEqual(extra, { epoch: [3], step: [30], value: [1] });
    // When the row was written, for charts by wall time.
    assert.ok(Math.abs(time[0] - Date.now() / 1000) < 60);
    assert.ok(more.cursor > all.cursor);

    const bad = await json(await app.request(`/api/runs/${fx.ids.finished}/metrics?after=-1`), 400);
    assert.match(bad.error, /after/);
  });
});

Deno.test("sweep page: heatmap over negatives × batch size, budget and best marked", async () => {
  await withApp(async (app, fx) => {
    const page = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    assert.match(page, /<th class="corner">batchSize ↓ negatives →<\/th>/);
    assert.equal(page.match(/<td class="cell /g)!.length, 6);
    const cells = [...page.matchAll(/<td class="(cell [^"]*)"[^>]*>(.*?)<\/td>/g)];
    const text = (i: number) => cells[i][2].replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();
    assert.equal(text(0), "0.2100 22.0 MiB");
    assert.equal(cells[2][1], "cell trial-finished best");
    assert.equal(text(2), "0.2700 95.0 MiB best under budget");
    assert.equal(cells[4][1], "cell trial-failed");
    assert.equal(text(4), "failed 85.0 MiB est.");
    assert.equal(cells[5][1], "cell trial-exceeds_budget exceeds");
    assert.equal(text(5), "exceeds budget 300 MiB est.");
    assert.match(page, /Best under budget: <strong>negatives=512, batchSize=64<\/strong>/);
    assert.match(page, /memory budget 100 MiB/);
    assert.match(page, /<td class="error-cell">out of GPU memory<\/td>/);
    assert.doesNotMatch(page, /http-equiv="refresh"/);
  });
});

Deno.test("/api/sweeps and /api/sweeps/:id", async () => {
  await withApp(async (app, fx) => {
    const list = await json(await app.request("/api/sweeps"));
    assert.equal(list.sweeps.length, 1);
    assert.deepEqual(list.sweeps[0].grid, { negatives: [32, 128, 512], batchSize: [64, 256] });
    assert.deepEqual(list.sweeps[0].counts, {
      pending: 0,
      running: 0,
      finished: 4,
      failed: 1,
      exceeds_budget: 1,
      pruned: 0,
    });

    const body = await json(await app.request(`/api/sweeps/${fx.ids.sweep}`));
    assert.equal(body.sweep.budgetBytes, 100 * MiB);
    assert.equal(body.trials.length, 6);
    assert.equal(body.best, "negatives=512,batchSize=64");
    const [h] = body.heatmaps;
    assert.deepEqual(h.x, { axis: "negatives", values: [32, 128, 512] });
    assert.deepEqual(h.y, { axis: "batchSize", values: [64, 256] });
    assert.deepEqual(h.cells[1][2], {
      trial: "negatives=512,batchSize=256",
      status: "exceeds_budget",
      ndcg10: null,
      memoryBytes: 300 * MiB,
      exceedsBudget: true,
      best: false,
    });
    assert.equal(h.cells[0][2].best, true);
    const trial = body.trials.find((t: { key: string }) => t.key === "negatives=128,batchSize=64");
    assert.equal(trial.runId, "20261129-110100-s00002");
    assert.equal(trial.validNdcg10, 0.25);
    assert.equal(trial.validHr10, 0.4);
    assert.equal(trial.secondsPerEpoch, 22);
    assert.equal(trial.peakBytes, 41 * MiB);
    assert.equal(trial.run.name, "sweep negatives=128,batchSize=64");
  });
});

Deno.test("a running sweep refreshes itself without JavaScript", async () => {
  await withApp(async (app, fx) => {
    await fx.sweeps.setSweepStatus(fx.ids.sweep, "running");
    const page = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    assert.match(page, /<meta http-equiv="refresh" content="10">/);
  });
});

Deno.test("compare page: 2–5 runs side by side", async () => {
  await withApp(async (app, fx) => {
    const page = await html(
      await app.request(`/compare?ids=${fx.ids.finished}&ids=${fx.ids.sampled}`),
    );
    assert.match(page, /<h1>Compare 2 runs<\/h1>/);
    assert.match(page, /<tr><th>batchSize<\/th><td\s*>128<\/td><td\s*>256<\/td><\/tr>/);
    assert.match(
      page,
      /<tr><th>test NDCG@10 vs MostPop<\/th><td class="num">0.2945 <span class="vs">vs 0.0270<\/span> <span class="ratio">\(10.9×\)<\/span><\/td><td class="num">0.2565 /,
    );
    // The full softmax did not read --negatives: it differs as "not read", not as 256.
    assert.match(
      page,
      /<tr><th>negatives<\/th><td\s*><span class="hint">not read by ce<\/span><\/td><td\s*>128<\/td><\/tr>/,
    );
    assert.match(
      page,
      new RegExp(
        `&quot;run&quot;:&quot;${fx.ids.sampled}&quot;,&quot;key&quot;:&quot;train_loss&quot;`,
      ),
    );
    const comma = await html(await app.request(`/compare?ids=${fx.ids.finished},${fx.ids.failed}`));
    assert.match(comma, /Compare 2 runs/);
    assert.match(await html(await app.request(`/compare?ids=${fx.ids.finished}`), 400), /2 to 5/);
    const six = Array.from({ length: 6 }, (_, i) => `20261129-110100-s0000${i + 1}`).join(",");
    assert.match(await html(await app.request(`/compare?ids=${six}`), 400), /got 6/);
    assert.match(
      await html(await app.request(`/compare?ids=${fx.ids.finished},20990101-000000-ffffff`), 404),
      /no run &quot;20990101-000000-ffffff&quot;/,
    );
  });
});

Deno.test("unknown ids and paths give 404 pages; the API answers JSON", async () => {
  await withApp(async (app) => {
    for (const path of ["/runs/20990101-000000-ffffff", "/sweeps/nope", "/nothing", "/runs"]) {
      const page = await html(await app.request(path), 404);
      assert.match(page, /<h1>Not found<\/h1>/, path);
    }
    for (const path of ["/api/runs/nope", "/api/runs/nope/metrics", "/api/sweeps/nope", "/api/x"]) {
      assert.ok((await json(await app.request(path), 404)).error, path);
    }
    const head = await app.request("/", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    for (
      const [method, path, allow] of [
        ["POST", "/", "GET, HEAD"],
        ["DELETE", "/api/runs", "GET, HEAD"],
        ["PUT", "/runs/20261129-100000-aaaaaa", "GET, HEAD"],
        ["GET", "/runs/20261129-100000-aaaaaa/notes", "POST"],
        ["OPTIONS", "/sweeps/x/trials.csv", "GET, HEAD"],
      ]
    ) {
      const res = await app.request(path, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
      assert.equal(res.headers.get("x-frame-options"), "DENY");
      await res.body?.cancel();
    }
    assert.equal((await app.request("/nothing", { method: "POST" })).status, 404);
  });
});

Deno.test("../ paths are refused and nothing but four static files is served", async () => {
  await withApp(async (app) => {
    // A bare ".." segment is resolved by URL parsing before routing; encoded ones reach the id.
    for (
      const path of [
        "/runs/..%2F..%2Fetc%2Fpasswd",
        "/runs/%2e%2e%2fdeno.json",
        "/runs/..%5C..%5Cwin.ini",
        "/sweeps/a..b",
        "/sweeps/..%2Fruns.sqlite",
      ]
    ) {
      assert.match(await html(await app.request(path), 400), /invalid/, path);
    }
    assert.equal((await app.request("/api/runs/..%2Fruns.sqlite/metrics")).status, 400);
    assert.equal((await app.request("/api/runs/a..b/events")).status, 400);
    for (
      const path of [
        "/static/",
        "/static",
        "/static/..%2F..%2Fdeno.json",
        "/static/%2E%2E/app.tsx",
        "/static/app.tsx",
        "/static/data.ts",
        "/runs.sqlite",
        "/deno.json",
      ]
    ) {
      const res = await app.request(path);
      assert.equal(res.status, 404, path);
      const body = await res.text();
      assert.ok(!body.includes("compilerOptions") && !body.includes("import "), path);
    }
  });
});

Deno.test("static files: uPlot from its npm package, the script and the stylesheet", async () => {
  await withApp(async (app) => {
    const expect: [string, RegExp, string][] = [
      ["/static/uPlot.iife.min.js", /^text\/javascript/, "uPlot"],
      ["/static/uPlot.min.css", /^text\/css/, ".uplot"],
      ["/static/dashboard.js", /^text\/javascript/, "EventSource"],
      ["/static/style.css", /^text\/css/, "table.heatmap"],
    ];
    for (const [path, type, text] of expect) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get("content-type")!, type);
      assert.ok((await res.text()).includes(text), path);
      const tag = res.headers.get("etag")!;
      assert.ok(tag, path);
      const again = await app.request(path, { headers: { "if-none-match": tag } });
      assert.equal(again.status, 304, path);
    }
  });
});

Deno.test("loopback-only apps refuse other Host names (DNS rebinding)", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  const app = createApp({ runsDir: fx.dir, loopbackOnly: true, signal: abort.signal });
  for (const host of ["127.0.0.1:8787", "localhost:8787", "[::1]:8787", "localhost"]) {
    const res = await app.request("http://x/api/runs", { headers: { host } });
    assert.equal(res.status, 200, host);
    await res.body?.cancel();
  }
  for (const host of ["evil.example", "evil.example:8787", "127.0.0.1.evil.example"]) {
    const res = await app.request("http://x/api/runs", { headers: { host } });
    assert.equal(res.status, 421, host);
    // The refusal carries the same security headers as every other answer.
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.match(res.headers.get("content-security-policy")!, /default-src 'none'/);
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    assert.equal(res.headers.get("referrer-policy"), "same-origin");
    await res.body?.cancel();
  }
  abort.abort();
  await fx.cleanup();
});

Deno.test("an empty runs folder: no database yet, no sweep tables", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cutrec-dash-empty-" });
  const abort = new AbortController();
  const app = createApp({ runsDir: dir, signal: abort.signal });
  assert.match(await html(await app.request("/")), /No runs in <code>/);
  assert.deepEqual(await json(await app.request("/api/runs")), { total: 0, runs: [] });
  assert.deepEqual(await json(await app.request("/api/sweeps")), { sweeps: [] });
  await html(await app.request("/runs/20261129-100000-aaaaaa"), 404);

  // The database appears once a run starts, without the sweep tables.
  const store = await RunStore.open(dir);
  await store.createRun({ id: "20261129-100000-aaaaaa", name: "first", dataset: "d", config: {} });
  assert.equal((await json(await app.request("/api/runs"))).total, 1);
  assert.match(await html(await app.request("/")), /No sweeps yet/);
  await html(await app.request("/sweeps/any"), 404);
  await store.close();
  abort.abort();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a lost run: badge, frozen duration, last checkpoint and the resume command", async () => {
  await withApp(async (app, fx) => {
    const list = await html(await app.request("/"));
    const row = rowOf(list, `value="${fx.ids.lost}"`);
    assert.equal(row[2], "lost");
    // From its creation to its last heartbeat, not to now.
    assert.equal(row[9], "2 min 00 s");
    assert.match(list, /<option value="lost"\s*>lost<\/option>/);
    const only = await json(await app.request("/api/runs?status=lost"));
    assert.deepEqual(only.runs.map((r: { id: string }) => r.id), [fx.ids.lost]);
    assert.equal(only.runs[0].durationSeconds, 120);
    // While lost, its peak is the highest its epochs recorded.
    assert.equal(only.runs[0].peakBytes, 80 * MiB);

    const page = await html(await app.request(`/runs/${fx.ids.lost}`));
    assert.match(page, /<h1>killed-cce- <span class="badge status-lost" data-field="status">lost/);
    assert.doesNotMatch(page, /data-live=/);
    assert.ok(page.includes(`<code>${fx.dir}/${fx.ids.lost}/last.safetensors</code>`));
    assert.match(page, /after epoch 2, step 12/);
    assert.ok(
      page.includes(
        `<code class="command">deno task train --resume ${fx.ids.lost} --out ${fx.dir}</code>`,
      ),
    );
    // Other runs show no resume panel.
    assert.doesNotMatch(await html(await app.request(`/runs/${fx.ids.running}`)), /--resume/);
  });
});

Deno.test("objectives read through the registry; config bytes in units; human statuses", async () => {
  await withApp(async (app, fx) => {
    const list = await html(await app.request("/"));
    assert.deepEqual(rowOf(list, `value="${fx.ids.fullSoftmax}"`).slice(4, 6), [
      "cce",
      "full softmax",
    ]);
    assert.deepEqual(rowOf(list, `value="${fx.ids.lost}"`).slice(4, 6), ["cce-", "256 shared"]);
    // BCE scores one negative whatever --negatives says.
    assert.deepEqual(rowOf(list, `value="${fx.ids.running}"`).slice(4, 6), ["bce", "1 uniform"]);
    const api = await json(await app.request(`/api/runs/${fx.ids.fullSoftmax}`));
    assert.equal(api.run.negatives, null);
    assert.equal(api.run.objective, "full softmax");

    const page = await html(await app.request(`/runs/${fx.ids.fullSoftmax}`));
    assert.match(page, /<th>memoryLimit<\/th><td>100 MiB<\/td>/);
    assert.doesNotMatch(page, /<th>negatives<\/th>/);
    assert.doesNotMatch(page, /<th>sampler<\/th>/);
    assert.match(page, /<th>filterEps<\/th><td>0<\/td>/);
    assert.match(page, /Not read by cce \(full softmax\): negatives, sampler\./);
    // The memory chart draws the metric the trainer writes, and only that one.
    assert.doesNotMatch(page, /peak_gpu_bytes/);
    const sampled = await html(await app.request(`/runs/${fx.ids.sampled}`));
    assert.match(sampled, /<th>negatives<\/th><td>128<\/td>/);

    const compare = await html(
      await app.request(`/compare?ids=${fx.ids.fullSoftmax},${fx.ids.sampled}`),
    );
    assert.match(compare, /<tr><th>memoryLimit<\/th><td\s*>100 MiB<\/td><td\s*>—<\/td><\/tr>/);
    assert.match(compare, /<th>negatives<\/th><td class="num">full softmax<\/td>/);

    const sweep = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    assert.match(
      sweep,
      /<span class="badge status-exceeds_budget" data-field="status">exceeds budget/,
    );
    // The status code appears in class names only, never as text.
    assert.doesNotMatch(sweep.replace(/class="[^"]*"/g, ""), /exceeds_budget/);
  });
});

Deno.test("sweep CSV: the CLI's export of every trial, as a download", async () => {
  await withApp(async (app, fx) => {
    const res = await app.request(`/sweeps/${fx.ids.sweep}/trials.csv`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/csv; charset=utf-8");
    assert.equal(
      res.headers.get("content-disposition"),
      `attachment; filename="${fx.ids.sweep}-trials.csv"`,
    );
    const text = await res.text();
    assert.equal(text, trialsCsv((await fx.sweeps.getSweep(fx.ids.sweep))!));
    const lines = text.trimEnd().split("\r\n");
    assert.equal(lines.length, 7);
    assert.match(lines[1], /^sweep-20261129-a1,"negatives=512,batchSize=64",512,64,finished,/);
    const page = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    assert.ok(page.includes(`href="/sweeps/${fx.ids.sweep}/trials.csv"`));
    assert.equal((await app.request("/sweeps/nope/trials.csv")).status, 404);
  });
});

Deno.test("sweep page: the CLI's columns, a numeric colour scale, parallel coordinates", async () => {
  await withApp(async (app, fx) => {
    const page = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    // Trials best first, a column per grid axis, then NDCG, HR, Coverage@10 and s/epoch.
    const best = rowOf(page, ' class="best">');
    assert.deepEqual(best.slice(0, 8), [
      "512",
      "64",
      "finished",
      "0.2700",
      "0.4320",
      "1.0000",
      "22",
      "95.0 MiB",
    ]);
    assert.match(
      page,
      /<span class="ticks"><span>0.2100<\/span><span>0.2400<\/span><span>0.2700<\/span>/,
    );
    assert.match(page, /style="background:rgb\(253, 231, 37\);color:#1a1a1a"/);
    assert.equal(page.match(/<polyline /g)!.length, 6);
    assert.equal(page.match(/<polyline class="line unscored"/g)!.length, 2);
  });
});

Deno.test("runs list: live runs mark the list for refreshing and their durations tick", async () => {
  await withApp(async (app, fx) => {
    const page = await html(await app.request("/"));
    assert.match(page, /data-region="runs" data-live-runs="1"/);
    assert.match(page, /refreshes while 1 run trains/);
    assert.match(page, /<script type="module" src="\/static\/dashboard.js">/);
    const live = rowOf(page, `value="${fx.ids.running}"`);
    assert.ok(live.length);
    assert.match(page, /<td class="num" data-since="\d{4}-\d\d-\d\dT[^"]+">/);
    await fx.store.update(fx.ids.running, { status: "finished", wallSeconds: 5, finished: true });
    const after = await html(await app.request("/"));
    assert.match(after, /data-live-runs="0"/);
    assert.doesNotMatch(after, /data-since=/);
  });
});

Deno.test("sweep page: a worker column appears once a queue worker ran a trial", async () => {
  await withApp(async (app, fx) => {
    const before = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    assert.doesNotMatch(before, /<th>worker<\/th>/, "local sweeps have no worker column");
    const store = await SweepStore.open(fx.dir);
    const [trial] = await store.listTrials(fx.ids.sweep);
    await store.upsertTrial({ ...trial, worker: "gpu-box-2:4242", attempt: 2 });
    await store.close();
    const after = await html(await app.request(`/sweeps/${fx.ids.sweep}`));
    assert.match(after, /<th>worker<\/th>/);
    assert.match(after, /<td class="nowrap mono">gpu-box-2:4242<\/td>/);
  });
});
