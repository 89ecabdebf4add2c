/** Starts the dashboard on an HTTP server: `deno task serve` and `deno task train --serve`. */
import { createApp } from "./app.tsx";

export interface ServeOptions {
  runsDir: string;
  /** The run store: a postgres:// URL; null or absent: `<runsDir>/runs.sqlite`. */
  store?: string | null;
  /** 0 picks a free port. */
  port?: number;
  /** 127.0.0.1 unless a wider address is asked for explicitly. */
  host?: string;
  pollMs?: number;
}

export interface Dashboard {
  url: string;
  port: number;
  close(): Promise<void>;
}

export const DEFAULT_PORT = 8787;
export const DEFAULT_HOST = "127.0.0.1";

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host);
}

export function serveDashboard(opts: ServeOptions): Dashboard {
  const host = opts.host ?? DEFAULT_HOST;
  const abort = new AbortController();
  const app = createApp({
    runsDir: opts.runsDir,
    store: opts.store,
    pollMs: opts.pollMs,
    signal: abort.signal,
    loopbackOnly: isLoopback(host),
  });
  const server = Deno.serve(
    { hostname: host, port: opts.port ?? DEFAULT_PORT, onListen: () => {} },
    app.fetch,
  );
  const port = server.addr.port;
  const shown = host.includes(":") ? `[${host}]` : host;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${shown}:${port}/`,
    port,
    close() {
      // Open event streams end first, or shutdown would wait for them.
      abort.abort();
      closed ??= server.shutdown();
      return closed;
    },
  };
}
