/**
 * A PostgreSQL server of a test's own: a cluster made by `initdb` in a temporary folder, started
 * by `pg_ctl` on a free loopback port (its socket in that folder too), trust authentication for
 * the `postgres` user, stopped and removed by `stop()`. PostgreSQL refuses to run as root, so a
 * root test runs the server as the `postgres` user (Debian's package creates it) through
 * `runuser`. Tests skip, saying why, where the binaries are not installed.
 */
import { PostgresSql } from "../../src/store/postgres.ts";
import { Engine } from "../../src/tensor/engine.ts";
import "../../src/tensor/ops/mod.ts";
import { freePort } from "../../bench/redis.ts";

const ROOTS = ["/usr/lib/postgresql"];

/** The folder holding initdb and pg_ctl: Debian's newest version, or the one on PATH. */
function findBinaries(): string | null {
  for (const root of ROOTS) {
    let versions: string[] = [];
    try {
      versions = [...Deno.readDirSync(root)].map((e) => e.name).filter((v) => /^\d+$/.test(v));
    } catch {
      continue;
    }
    versions.sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const bin = `${root}/${v}/bin`;
      if (exists(`${bin}/initdb`) && exists(`${bin}/pg_ctl`)) return bin;
    }
  }
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && exists(`${dir}/initdb`) && exists(`${dir}/pg_ctl`)) return dir;
  }
  return null;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const BIN = findBinaries();
const IS_ROOT = Deno.uid() === 0;
/** The user a root test runs the server as. */
const SERVER_USER = "postgres";

function serverUid(): number | null {
  if (!IS_ROOT) return null;
  try {
    const line = Deno.readTextFileSync("/etc/passwd").split("\n")
      .find((l) => l.startsWith(`${SERVER_USER}:`));
    return line ? Number(line.split(":")[2]) : null;
  } catch {
    return null;
  }
}

const UID = serverUid();

/** Why PostgreSQL tests are skipped here, or null when a server can be started. */
export const postgresMissing: string | null = BIN === null
  ? "initdb/pg_ctl not found (/usr/lib/postgresql/*/bin or PATH): PostgreSQL store tests " +
    "skipped (apt-get install -y postgresql; .ci/run installs it)"
  : IS_ROOT && UID === null
  ? `running as root without a "${SERVER_USER}" user to run the server as: PostgreSQL store ` +
    "tests skipped (apt-get install -y postgresql creates it)"
  : null;
if (postgresMissing) console.warn(`warning: ${postgresMissing}`);

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /**
   * A fresh, empty store on this server, as a URL: a schema of its own, made the connection's
   * search path (far quicker than a database per test).
   */
  createStore(): Promise<string>;
  stop(): Promise<void>;
}

/** Runs a server binary, as the server's user when this process is root. */
async function run(tool: string, args: string[]): Promise<void> {
  const command = IS_ROOT
    ? new Deno.Command("runuser", { args: ["-u", SERVER_USER, "--", `${BIN}/${tool}`, ...args] })
    : new Deno.Command(`${BIN}/${tool}`, { args });
  const out = await command.output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${tool} ${args.join(" ")} failed: ${text.trim()}`);
  }
}

export async function startPostgres(): Promise<PostgresServer> {
  if (postgresMissing) throw new Error(postgresMissing);
  const dir = await Deno.makeTempDir({ prefix: "cutrec-postgres-" });
  if (UID !== null) await Deno.chown(dir, UID, null);
  const data = `${dir}/data`;
  const port = freePort();
  await run("initdb", [
    ...["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
  ]);
  await run("pg_ctl", [
    ...["-D", data, "-l", `${dir}/server.log`, "-w", "-t", "30"],
    // Loopback only, the socket in the temporary folder, no fsync: a test's data is thrown away.
    ...["-o", `-h 127.0.0.1 -p ${port} -k ${dir} -F`, "start"],
  ]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let stores = 0;
  return {
    url,
    port,
    createStore: async () => {
      const schema = `test_${++stores}`;
      const admin = await PostgresSql.connect(url);
      try {
        await admin.run(`create schema ${schema}`);
      } finally {
        await admin.close();
      }
      return `${url}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    },
    stop: async () => {
      await run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * A Deno.test (skipped, saying why, without PostgreSQL) that gets its own server and a fresh store
 * on it whose URL carries a password ("secret", which nothing may record), a temporary folder and
 * an engine of its own; all three are gone after it.
 */
export function postgresTest(
  name: string,
  fn: (t: { e: Engine; dir: string; store: string }) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: postgresMissing !== null,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const server = await startPostgres();
      const dir = await Deno.makeTempDir();
      const e = await Engine.create();
      try {
        const store = (await server.createStore()).replace("postgres@", "postgres:secret@");
        await fn({ e, dir, store });
      } finally {
        e.destroy();
        await server.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
