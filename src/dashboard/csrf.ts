/**
 * Cross-site request forgery guard for the forms that change something (notes, archive,
 * delete). Each app makes a random token that its pages put in every such form; a POST must
 * carry it, and when the browser says where the request comes from (Origin, Sec-Fetch-Site) that
 * must be this dashboard. Another site can neither read the token (no CORS, and the Host check
 * stops DNS rebinding) nor pass the origin checks.
 */
import type { Context } from "hono";

export class CsrfGuard {
  readonly token: string;

  constructor() {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    this.token = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Why the request is refused, or null when it may go ahead. */
  refusal(c: Context, sent: unknown): string | null {
    const site = c.req.header("sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      return `a ${site} request may not change anything here`;
    }
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== new URL(c.req.url).origin) {
      return `requests from ${origin.slice(0, 100)} may not change anything here`;
    }
    if (typeof sent !== "string" || !sameText(sent, this.token)) {
      return "the form's token is missing or stale (the dashboard restarted?): reload the page";
    }
    return null;
  }
}

/** Compares in time that does not depend on where the texts differ. */
function sameText(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  }
  return diff === 0;
}
