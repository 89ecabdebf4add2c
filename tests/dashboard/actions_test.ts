/**
 * What the dashboard changes: tags and notes, archive, delete. Each is a form POST that needs
 * the page's CSRF token and, when the browser names one, this origin.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../src/dashboard/app.tsx";
import { StoreReader } from "../../src/store/read.ts";
import { type Fixture, makeFixture } from "./fixtures.ts";

const ORIGIN = "http://localhost";

async function withApp(
  fn: (app: Hono, fx: Fixture, token: string, reader: StoreReader) => Promise<void>,
): Promise<void> {
  const fx = await makeFixture();
  const abort = new AbortController();
  const reader = StoreReader.open(fx.dir);
  try {
    const app = createApp({ runsDir: fx.dir, signal: abort.signal });
    const page = await (await app.request(`/runs/${fx.ids.finished}`)).text();
    const token = /name="csrf" value="([0-9a-f]{64})"/.exec(page)![1];
    await fn(app, fx, token, reader);
  } finally {
    await reader.close();
    abort.abort();
    await fx.cleanup();
  }
}

function post(
  app: Hono,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = { origin: ORIGIN },
): Promise<Response> {
  return Promise.resolve(
    app.request(`${ORIGIN}${path}`, { method: "POST", body: new URLSearchParams(fields), headers }),
  );
}

Deno.test("notes: tags and a note saved, shown, filtered and searched", async () => {
  await withApp(async (app, fx, csrf, reader) => {
    const res = await post(app, `/runs/${fx.ids.finished}/notes`, {
      csrf,
      tags: " baseline, beauty ,, baseline ",
      note: "full softmax reference\r\nfor the sampled runs",
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/runs/${fx.ids.finished}`);
    const notes = await reader.notes(fx.ids.finished);
    assert.deepEqual(notes.tags, ["baseline", "beauty"]);
    assert.equal(notes.note, "full softmax reference\nfor the sampled runs");

    const page = await (await app.request(`/runs/${fx.ids.finished}`)).text();
    assert.match(page, /<ul class="tags"><li><a href="\/\?tag=baseline">baseline<\/a><\/li>/);
    assert.match(page, /<p class="run-note">full softmax reference\nfor the sampled runs<\/p>/);
    assert.match(page, /<input name="tags" value="baseline, beauty"/);

    const list = await (await app.request("/?tag=beauty")).text();
    assert.match(list, /1 of 11 runs/);
    assert.match(list, /<span class="chip">baseline<\/span><span class="chip">beauty<\/span>/);
    const api = await (await app.request("/api/runs?q=reference")).json();
    assert.deepEqual(api.runs.map((r: { id: string }) => r.id), [fx.ids.finished]);

    for (
      const [fields, message] of [
        [{ tags: Array.from({ length: 21 }, (_, i) => `t${i}`).join(",") }, /at most 20 tags/],
        [{ tags: "x".repeat(41) }, /at most 40 characters/],
        [{ note: "n".repeat(5001) }, /at most 5000 characters/],
      ] as const
    ) {
      const bad = await post(app, `/runs/${fx.ids.finished}/notes`, { csrf, ...fields });
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), message);
    }
    const huge = await post(app, `/runs/${fx.ids.finished}/notes`, {
      csrf,
      note: "n".repeat(70_000),
    });
    assert.equal(huge.status, 413);
    await huge.body?.cancel();
  });
});

Deno.test("forms without the token, or from another origin, change nothing", async () => {
  await withApp(async (app, fx, csrf, reader) => {
    const path = `/runs/${fx.ids.finished}/archive`;
    const refused: [Record<string, string>, Record<string, string>, RegExp][] = [
      [{ archived: "1" }, { origin: ORIGIN }, /token is missing or stale/],
      [{ archived: "1", csrf: csrf.replace(/.$/, "0") + "0" }, { origin: ORIGIN }, /token/],
      [{ archived: "1", csrf }, { origin: "http://evil.example" }, /evil\.example/],
      [{ archived: "1", csrf }, { origin: "null" }, /from null/],
      [{ archived: "1", csrf }, { "sec-fetch-site": "cross-site" }, /cross-site request/],
    ];
    for (const [fields, headers, message] of refused) {
      const res = await post(app, path, fields, headers);
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.match(await res.text(), message);
    }
    assert.equal((await reader.notes(fx.ids.finished)).archivedAt, null);
    // Without Origin or Sec-Fetch-Site (curl), the token alone is enough.
    const res = await post(app, path, { archived: "1", csrf }, {});
    assert.equal(res.status, 303);
  });
});

Deno.test("archive hides a run from the list until it is brought back", async () => {
  await withApp(async (app, fx, csrf, reader) => {
    const ids = async (query: string) =>
      (await (await app.request(`/api/runs${query}`)).json()).runs.map((r: { id: string }) => r.id);
    assert.equal(
      (await post(app, `/runs/${fx.ids.sampled}/archive`, { csrf, archived: "1" }))
        .status,
      303,
    );
    assert.ok((await reader.notes(fx.ids.sampled)).archivedAt);
    assert.ok(!(await ids("")).includes(fx.ids.sampled));
    assert.deepEqual(await ids("?show=archived"), [fx.ids.sampled]);
    assert.equal((await ids("?show=all")).length, 11);
    const page = await (await app.request(`/runs/${fx.ids.sampled}`)).text();
    assert.match(page, /archived \d{4}-\d\d-\d\d/);
    assert.match(page, /<input type="hidden" name="archived" value="0">/);
    assert.equal(
      (await post(app, `/runs/${fx.ids.sampled}/archive`, { csrf, archived: "0" }))
        .status,
      303,
    );
    assert.ok((await ids("")).includes(fx.ids.sampled));
    const bad = await post(app, `/runs/${fx.ids.sampled}/archive`, { csrf, archived: "yes" });
    assert.equal(bad.status, 400);
  });
});

Deno.test("delete: a confirmation page, then the run and its folder go; links stay", async () => {
  await withApp(async (app, fx, csrf, reader) => {
    const id = fx.ids.finished;
    const folder = `${fx.dir}/${id}`;
    await Deno.mkdir(`${folder}/sub`, { recursive: true });
    await Deno.writeTextFile(`${folder}/config.json`, "{}");
    await Deno.writeTextFile(`${folder}/sub/last.safetensors`, "12345");
    // A link inside the folder: removing the folder removes the link, not what it points to.
    const outside = await Deno.makeTempFile();
    await Deno.symlink(outside, `${folder}/elsewhere`);

    const confirm = await (await app.request(`/runs/${id}/delete`)).text();
    assert.match(confirm, /<h1>Delete run beauty-ce\?<\/h1>/);
    assert.ok(confirm.includes(`<code>${folder}</code> (3 files, 7 B: checkpoints and config)`));
    assert.match(confirm, new RegExp(`<input type="hidden" name="confirm" value="${id}">`));

    const unconfirmed = await post(app, `/runs/${id}/delete`, { csrf });
    assert.equal(unconfirmed.status, 400);
    await unconfirmed.body?.cancel();
    assert.ok(await reader.getRun(id));

    const res = await post(app, `/runs/${id}/delete`, { csrf, confirm: id });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), `/?deleted=${id}`);
    assert.equal(await reader.getRun(id), null);
    assert.deepEqual(await reader.metricRows(id), []);
    await assert.rejects(Deno.lstat(folder), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(outside), "");
    await Deno.remove(outside);

    const list = await (await app.request(`/?deleted=${id}`)).text();
    assert.match(list, new RegExp(`Deleted run ${id} and its files`));
    // A run that still exists is never announced as deleted.
    const lie = await (await app.request(`/?deleted=${fx.ids.sampled}`)).text();
    assert.doesNotMatch(lie, /Deleted run/);
    assert.equal((await app.request(`/runs/${id}/delete`)).status, 404);
  });
});

Deno.test("delete: a run folder that is a link loses the link only; no folder is fine", async () => {
  await withApp(async (app, fx, csrf) => {
    const target = await Deno.makeTempDir();
    await Deno.writeTextFile(`${target}/keep.txt`, "keep");
    await Deno.symlink(target, `${fx.dir}/${fx.ids.sampled}`);
    const res = await post(app, `/runs/${fx.ids.sampled}/delete`, {
      csrf,
      confirm: fx.ids.sampled,
    });
    assert.equal(res.status, 303);
    assert.equal(await Deno.readTextFile(`${target}/keep.txt`), "keep");
    await assert.rejects(Deno.lstat(`${fx.dir}/${fx.ids.sampled}`), Deno.errors.NotFound);
    await Deno.remove(target, { recursive: true });

    const none = await post(app, `/runs/${fx.ids.lost}/delete`, { csrf, confirm: fx.ids.lost });
    assert.equal(none.status, 303);
  });
});

Deno.test("delete is refused for a run in training and for a sweep's trial", async () => {
  await withApp(async (app, fx, csrf, reader) => {
    for (
      const [id, message] of [
        [fx.ids.running, /is training: stop it before deleting it/],
        [
          fx.ids.bestTrialRun,
          /is a trial of sweep &quot;sweep-20261129-a1&quot;.*archive it instead/,
        ],
      ] as const
    ) {
      const page = await app.request(`/runs/${id}/delete`);
      assert.equal(page.status, 409);
      assert.match(await page.text(), message);
      const res = await post(app, `/runs/${id}/delete`, { csrf, confirm: id });
      assert.equal(res.status, 409);
      assert.match(await res.text(), message);
      assert.ok(await reader.getRun(id));
    }
    const live = await (await app.request(`/runs/${fx.ids.running}`)).text();
    assert.match(live, /A run in training cannot be deleted/);
    assert.doesNotMatch(live, /delete…/);
  });
});
