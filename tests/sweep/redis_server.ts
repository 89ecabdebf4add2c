/**
 * The queue tests' Redis: bench/redis.ts starts one on a free loopback port with a temporary data
 * folder. Tests skip, saying why, where redis-server is not installed.
 */
export { freePort, type RedisServer, startRedis } from "../../bench/redis.ts";

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
