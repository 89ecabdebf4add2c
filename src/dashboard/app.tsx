/**
 * The dashboard's hono app: server-rendered pages, the JSON API behind them, Server-Sent Events
 * for runs in training, the three forms that change a run (notes, archive, delete), and the
 * static files the pages load (uPlot straight from its npm package, the stylesheet and the
 * scripts). Nothing else is served: no directory, no file named by a request.
 */
import { type Context, Hono } from "hono";
import { etag } from "hono/etag";
import { methodNotAllowed } from "hono/method-not-allowed";
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import chartsJs from "./static/charts.js" with { type: "text" };
import clientJs from "./static/dashboard.js" with { type: "text" };
import embeddingsJs from "./static/embeddings.js" with { type: "text" };
import styleCss from "./static/style.css" with { type: "text" };
import { StoreReader } from "../store/read.ts";
import { RunStore } from "../store/runs.ts";
import { CsrfGuard } from "./csrf.ts";
import { actionRoutes } from "./routes/actions.ts";
import { apiRoutes } from "./routes/api.ts";
import { embeddingRoutes } from "./routes/embeddings.tsx";
import { type Dash, fail, isApi } from "./routes/common.tsx";
import { pageRoutes } from "./routes/pages.tsx";
import { pruneRoutes } from "./routes/prune.tsx";

export interface AppOptions {
  /** The runs folder: checkpoints, and `<runsDir>/runs.sqlite` unless `store` names another. */
  runsDir: string;
  /** The run store: a postgres:// URL; null or absent: `<runsDir>/runs.sqlite`. */
  store?: string | null;
  /** How often the live-update stream looks for new metric rows. */
  pollMs?: number;
  /** Aborting it ends open event streams (server shutdown). */
  signal?: AbortSignal;
  /**
   * Answer only requests whose Host is a loopback name, so that a web page cannot reach the
   * dashboard through DNS rebinding. On when the server binds a loopback address.
   */
  loopbackOnly?: boolean;
}

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Heatmap cells and the colour scale carry their colours in style attributes.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": CSP,
  // Nothing leaves for other sites; same-origin form posts keep a real Origin header (under
  // no-referrer, browsers send "Origin: null", which the CSRF guard cannot tell from a forgery).
  "Referrer-Policy": "same-origin",
  "X-Frame-Options": "DENY",
};

const JS = "text/javascript; charset=utf-8";
const STATIC: Record<string, { body: string; type: string }> = {
  "uPlot.iife.min.js": { body: uplotJs, type: JS },
  "uPlot.min.css": { body: uplotCss, type: "text/css; charset=utf-8" },
  "charts.js": { body: chartsJs, type: JS },
  "dashboard.js": { body: clientJs, type: JS },
  "embeddings.js": { body: embeddingsJs, type: JS },
  "style.css": { body: styleCss, type: "text/css; charset=utf-8" },
};

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

export function createApp(opts: AppOptions): Hono {
  const reader = StoreReader.open(opts.runsDir, opts.store ?? null);
  let writer: Promise<RunStore> | null = null;
  const d: Dash = {
    reader,
    runsDir: opts.runsDir,
    csrf: new CsrfGuard(),
    pollMs: opts.pollMs ?? 500,
    signal: opts.signal,
    writer: () => writer ??= RunStore.open(opts.runsDir, opts.store ?? null),
  };
  const app = new Hono();

  // Every answer carries the security headers, the 421 of a foreign Host and the 405s included.
  app.use(async (c, next) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
    if (opts.loopbackOnly && !LOOPBACK.test(c.req.header("host") ?? "")) {
      return c.text("this dashboard answers loopback host names only", 421);
    }
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });

  app.use(methodNotAllowed({
    app,
    onMethodNotAllowed: (c: Context, methods: string[]) => {
      const allow = { Allow: methods.join(", ") };
      const message = `${c.req.method} is not allowed here (allowed: ${allow.Allow})`;
      return isApi(c) ? c.json({ error: message }, 405, allow) : c.text(message, 405, allow);
    },
  }));

  app.notFound((c) => fail(c, 404, `nothing at ${c.req.path}`));

  app.onError((err, c) => {
    console.error(`dashboard: ${c.req.method} ${c.req.path}: ${err.stack ?? err}`);
    return isApi(c) ? c.json({ error: "internal error" }, 500) : c.text("internal error", 500);
  });

  app.use("/static/*", etag());
  app.get("/static/:name", (c) => {
    const name = c.req.param("name");
    const file = Object.hasOwn(STATIC, name) ? STATIC[name] : null;
    if (!file) return c.notFound();
    return c.body(file.body, 200, { "Content-Type": file.type, "Cache-Control": "no-cache" });
  });

  pageRoutes(app, d);
  pruneRoutes(app, d);
  apiRoutes(app, d);
  actionRoutes(app, d);
  const embeddingMaps = embeddingRoutes(app, d);

  opts.signal?.addEventListener("abort", () => {
    embeddingMaps.close();
    reader.close().catch(() => {});
    writer?.then((w) => w.close()).catch(() => {});
  }, { once: true });
  return app;
}
