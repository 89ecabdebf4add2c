/** The HTTP server: loopback by default, and `deno task serve` as a process. */
import assert from "node:assert/strict";
import { serveDashboard } from "../../src/dashboard/serve.ts";
import { makeFixture } from "./fixtures.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** One raw HTTP/1.1 request, so that the Host header is exactly what the test says. */
async function rawGet(port: number, path: string, host: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch (e) {
    conn.close();
    throw e;
  }
}

Deno.test("serveDashboard binds 127.0.0.1 by default and answers loopback names only", async () => {
  const fx = await makeFixture();
  const dash = serveDashboard({ runsDir: fx.dir, port: 0 });
  try {
    assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(dash.url, `http://127.0.0.1:${dash.port}/`);
    const res = await fetch(`${dash.url}api/runs`);
    assert.equal((await res.json()).total, 11);
    assert.match(await rawGet(dash.port, "/api/runs", `127.0.0.1:${dash.port}`), /^HTTP\/1.1 200/);
    assert.match(await rawGet(dash.port, "/api/runs", `localhost:${dash.port}`), /^HTTP\/1.1 200/);
    const rebound = await rawGet(dash.port, "/api/runs", "attacker.example");
    assert.match(rebound, /^HTTP\/1.1 421/);
    assert.ok(!rebound.includes(fx.ids.finished));
  } finally {
    await dash.close();
    await fx.cleanup();
  }
});

Deno.test("deno task serve: --help, flag errors, serving until SIGINT", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/serve.ts", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    });
  const help = await run(["--help"]).output();
  assert.equal(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  assert.match(text, /--port\s+TCP port.*\[default: 8787\]/);
  assert.match(text, /--runs\s+.*\[default: runs\]/);
  assert.match(text, /--host\s+.*\[default: 127\.0\.0\.1\]/);
  const bad = await run(["--port", "http"]).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--port must be a port number/);
  assert.equal((await run(["--nope"]).output()).code, 2);

  const fx = await makeFixture();
  const child = run(["--port", "0", "--runs", fx.dir]).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stopped = false;
  try {
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) break;
      out += value;
    }
    const url = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
    assert.ok(url, out);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /11 of 11 runs/);
    child.kill("SIGINT");
    stopped = true;
    assert.equal((await child.status).code, 0);
  } finally {
    if (!stopped) child.kill("SIGKILL");
    await lines.cancel();
    await child.stderr.cancel();
    await child.status;
    await fx.cleanup();
  }
});
