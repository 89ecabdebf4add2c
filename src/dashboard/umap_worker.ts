/**
 * A worker thread that computes one UMAP map and caches it beside the embeddings, so that minutes
 * of UMAP (Beauty's 12,101 items) never hold up the dashboard's requests. Message in:
 * `{dir, kind}`; message out: `{ok: true, seconds}` or `{ok: false, error}`.
 */
import { type EmbeddingKind, readEmbeddings } from "../store/embeddings.ts";
import { umapMap, writeUmapCache } from "./embedding_map.ts";

export interface UmapRequest {
  dir: string;
  kind: EmbeddingKind;
}

export type UmapReply = { ok: true; seconds: number } | { ok: false; error: string };

const scope = globalThis as unknown as {
  onmessage: ((ev: MessageEvent<UmapRequest>) => void) | null;
  postMessage(reply: UmapReply): void;
};

scope.onmessage = (ev) => {
  const { dir, kind } = ev.data;
  try {
    const e = readEmbeddings(dir, kind);
    if (!e) throw new Error(`${dir}: no ${kind} embeddings`);
    const start = performance.now();
    const map = umapMap(e);
    const seconds = (performance.now() - start) / 1000;
    writeUmapCache(dir, kind, e, map, seconds);
    scope.postMessage({ ok: true, seconds });
  } catch (err) {
    scope.postMessage({ ok: false, error: (err as Error).message ?? String(err) });
  }
};
