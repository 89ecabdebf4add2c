/**
 * The three things the dashboard changes: a run's tags and note, its archive mark, and deleting
 * it with its folder. Each is a form POST carrying the CSRF token, answered with a redirect.
 */
import type { Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { RunView } from "../runs.ts";
import { type Dash, fail, isRefusal, runOf } from "./common.tsx";
import { deleteRefusal, removeRunFolder } from "../deletion.ts";

/** Bounds that keep a run's notes readable in a table. */
export const MAX_TAGS = 20;
export const MAX_TAG = 40;
export const MAX_NOTE = 5000;

/** "a, b,,  a" → ["a", "b"]; the reason instead when the tags go past the bounds. */
export function parseTags(text: string): string[] | string {
  const tags = [
    ...new Set(text.split(",").map((t) => t.replace(/\s+/g, " ").trim()).filter(Boolean)),
  ];
  if (tags.length > MAX_TAGS) return `at most ${MAX_TAGS} tags (got ${tags.length})`;
  const long = tags.find((t) => t.length > MAX_TAG);
  if (long) return `a tag has at most ${MAX_TAG} characters ("${long.slice(0, MAX_TAG)}…")`;
  return tags;
}

/** The run of the request and its form fields, once the CSRF guard let it through. */
async function form(
  d: Dash,
  c: Context,
): Promise<{ run: RunView; fields: Record<string, unknown> } | Response> {
  const run = await runOf(d, c);
  if (isRefusal(run)) return await run;
  let fields: Record<string, unknown>;
  try {
    fields = await c.req.parseBody();
  } catch {
    return await fail(c, 400, "the form could not be read");
  }
  const refused = d.csrf.refusal(c, fields.csrf);
  if (refused) return await fail(c, 403, refused);
  return { run, fields };
}

export function actionRoutes(app: Hono, d: Dash): void {
  // Notes are the largest field; anything much bigger is not a form from these pages.
  const limit = bodyLimit({
    maxSize: 64 * 1024,
    onError: (c) => fail(c, 413, "the form is too large"),
  });

  app.post("/runs/:id/notes", limit, async (c) => {
    const got = await form(d, c);
    if (got instanceof Response) return got;
    const { run, fields } = got;
    const tags = parseTags(typeof fields.tags === "string" ? fields.tags : "");
    if (typeof tags === "string") return fail(c, 400, tags);
    const note = typeof fields.note === "string" ? fields.note.replace(/\r\n/g, "\n").trim() : "";
    if (note.length > MAX_NOTE) return fail(c, 400, `a note has at most ${MAX_NOTE} characters`);
    await (await d.writer()).annotate(run.id, { tags, note });
    return c.redirect(`/runs/${encodeURIComponent(run.id)}`, 303);
  });

  app.post("/runs/:id/archive", limit, async (c) => {
    const got = await form(d, c);
    if (got instanceof Response) return got;
    const { run, fields } = got;
    if (fields.archived !== "1" && fields.archived !== "0") {
      return fail(c, 400, "archived must be 1 or 0");
    }
    await (await d.writer()).setArchived(run.id, fields.archived === "1");
    return c.redirect(`/runs/${encodeURIComponent(run.id)}`, 303);
  });

  app.post("/runs/:id/delete", limit, async (c) => {
    const got = await form(d, c);
    if (got instanceof Response) return got;
    const { run, fields } = got;
    // The confirmation page names the run; a form that names another is not that confirmation.
    if (fields.confirm !== run.id) return fail(c, 400, "confirm the deletion on its page");
    const refused = deleteRefusal(run);
    if (refused) return fail(c, 409, refused);
    await removeRunFolder(`${d.runsDir}/${run.id}`);
    await (await d.writer()).deleteRun(run.id);
    return c.redirect(`/?deleted=${encodeURIComponent(run.id)}`, 303);
  });
}
