/**
 * What every route shares: the store reader, the runs folder, the CSRF guard, the writer for the
 * few changes the dashboard makes, and the helpers that answer a request with a page or an error.
 */
import type { Context } from "hono";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { StoreReader } from "../../store/read.ts";
import type { RunStore } from "../../store/runs.ts";
import type { SweepView } from "../../store/sweeps.ts";
import type { CsrfGuard } from "../csrf.ts";
import { layoutSweep, type SweepLayout } from "../heatmap.ts";
import { epochRows, finalMetrics, STEP_KEYS } from "../metrics.ts";
import { ErrorPage } from "../pages/error.tsx";
import { getRunView, type RunView } from "../runs.ts";

export interface Dash {
  reader: StoreReader;
  runsDir: string;
  csrf: CsrfGuard;
  pollMs: number;
  signal?: AbortSignal;
  /** The store opened for writing, on first use (only notes, archive and delete write). */
  writer(): Promise<RunStore>;
}

export type ErrorStatus = 400 | 403 | 404 | 409 | 413;

const TITLES: Record<ErrorStatus, string> = {
  400: "Bad request",
  403: "Forbidden",
  404: "Not found",
  409: "Conflict",
  413: "Too large",
};

export function page(
  c: Context,
  node: HtmlEscapedString | Promise<HtmlEscapedString>,
  status: 200 | ErrorStatus = 200,
) {
  return c.html(html`<!doctype html>${node}`, status);
}

export function isApi(c: Context): boolean {
  return c.req.path.startsWith("/api/");
}

export function fail(c: Context, status: ErrorStatus, message: string) {
  return isApi(c)
    ? c.json({ error: message }, status)
    : page(c, <ErrorPage title={TITLES[status]} message={message} />, status);
}

/** Run and sweep ids: no path separators, no "..", nothing a path could be built from. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function validId(id: string): boolean {
  return ID.test(id) && !id.includes("..");
}

type Refusal = Response | Promise<Response>;

/** A run by the `:id` parameter, or the 400/404 response to send. */
export async function runOf(d: Dash, c: Context): Promise<RunView | Response> {
  const id = c.req.param("id") ?? "";
  if (!validId(id)) return await fail(c, 400, "invalid run id");
  return await getRunView(d.reader, id) ?? await fail(c, 404, `no run "${id}"`);
}

export function isRefusal(v: unknown): v is Refusal {
  return v instanceof Response || v instanceof Promise;
}

/** A sweep by the `:id` parameter with its heatmap layout, or the 400/404 response to send. */
export async function sweepOf(
  d: Dash,
  c: Context,
): Promise<{ view: SweepView; layout: SweepLayout } | Response> {
  const id = c.req.param("id") ?? "";
  if (!validId(id)) return await fail(c, 400, "invalid sweep id");
  const view = await d.reader.getSweep(id);
  if (!view) return await fail(c, 404, `no sweep "${id}"`);
  return { view, layout: layoutSweep(view.sweep.grid, view.trials, view.sweep.budgetBytes) };
}

/** A run with its epoch table and final metrics (every key but the per-step ones). */
export async function runDetail(d: Dash, run: RunView) {
  const rows = await d.reader.metricRows(run.id, { exceptKeys: STEP_KEYS });
  return { run, epochs: epochRows(rows), final: finalMetrics(rows) };
}
