/**
 * A Redis server of one's own, for the queue benchmark and the queue tests: `redis-server` on a free
 * loopback port with a temporary data folder, no snapshots and the append-only file on (as a
 * queue's Redis should run), stopped and removed by `stop()`.
 */

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A loopback port nothing listens on (taken from the OS, then released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

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
