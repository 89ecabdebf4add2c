/**
 * A Redis server of a test's own: `redis-server` on a free loopback port with a temporary data
 * folder, no snapshots and the append-only file on (as a queue's Redis should run), stopped and
 * removed by `stop()`. Tests skip, saying why, where redis-server is not installed.
 */
import { freePort } from "../support/free_port.ts";

/** Why queue tests are skipped here, or null when redis-server is on PATH. */
export const redisMissing: string | null = await new Deno.Command("redis-server", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
}).output().then(
  () => null,
  () =>
    "redis-server is not installed: queue tests skipped (apt-get install -y redis-server; " +
    ".ci/run installs it)",
);
if (redisMissing) console.warn(`warning: ${redisMissing}`);

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export { freePort };

export async function startRedis(): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "cutrec-redis-" });
  const port = freePort();
  const server = new Deno.Command("redis-server", {
    args: [
      ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
      ...["--save", "", "--appendonly", "yes"],
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(server.stderr).text();
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() > deadline) {
        server.kill("SIGKILL");
        await server.status;
        throw new Error(`redis-server on 127.0.0.1:${port} did not start: ${await stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      server.kill("SIGTERM");
      await server.status;
      await stderr;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
