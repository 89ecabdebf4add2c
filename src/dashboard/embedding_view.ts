/**
 * What the embeddings page shows for a run: which kinds of embeddings it has (written by its
 * trainer, or a SASRec run's items derived from its checkpoint), and the map of one kind: the
 * cached UMAP when there is one, else PCA while a worker computes UMAP and caches it.
 */
import {
  EMBEDDING_KINDS,
  type EmbeddingKind,
  embeddingKindsIn,
  type Embeddings,
  readEmbeddings,
} from "../store/embeddings.ts";
import type { RunRecord } from "../store/read.ts";
import {
  type EmbeddingMap,
  fingerprint,
  pcaMap,
  readUmapCache,
  UMAP_MAX_COUNT,
  UMAP_MIN_COUNT,
  UMAP_MIN_DIST,
  UMAP_NEIGHBOURS,
  UMAP_SEED,
  umapApplies,
} from "./embedding_map.ts";
import { isSasRecRun, itemEmbeddingsDue, writeItemEmbeddings } from "./item_embeddings.ts";
import type { UmapReply, UmapRequest } from "./umap_worker.ts";

/** PCA maps kept in memory (by the vectors' fingerprint). */
const PCA_KEPT = 8;

export interface MapState {
  map: EmbeddingMap;
  /** A worker is computing UMAP: the map will switch to it. */
  pending: boolean;
  /** How the map was made, for the page. */
  note: string;
}

/** The kinds of embeddings a run has, or will have once its page derives them. */
export function embeddingKindsOf(runsDir: string, run: RunRecord): EmbeddingKind[] {
  const dir = `${runsDir}/${run.id}`;
  const kinds = embeddingKindsIn(dir);
  if (!kinds.includes("items") && itemEmbeddingsDue(run, dir)) kinds.push("items");
  return EMBEDDING_KINDS.filter((k) => kinds.includes(k));
}

export class EmbeddingMaps {
  private readonly workers = new Map<string, Worker>();
  /** UMAP failures by job key (the vectors' fingerprint in it): not tried again for them. */
  private readonly failures = new Map<string, string>();
  private readonly deriving = new Map<string, Promise<Embeddings>>();
  private readonly pcaMaps = new Map<string, EmbeddingMap>();

  constructor(private readonly runsDir: string) {}

  private runDir(run: RunRecord): string {
    return `${this.runsDir}/${run.id}`;
  }

  /** One kind of the run's embeddings (a SASRec run's items written first when due). */
  async load(run: RunRecord, kind: EmbeddingKind): Promise<Embeddings | null> {
    const dir = this.runDir(run);
    if (kind === "items" && isSasRecRun(run) && itemEmbeddingsDue(run, dir)) {
      let derived = this.deriving.get(dir);
      if (!derived) {
        derived = writeItemEmbeddings(run, this.runsDir);
        this.deriving.set(dir, derived);
        derived.finally(() => this.deriving.delete(dir)).catch(() => {});
      }
      return await derived;
    }
    return readEmbeddings(dir, kind);
  }

  /** The map to show now: cached UMAP, else PCA (starting UMAP's worker when it applies). */
  map(run: RunRecord, kind: EmbeddingKind, e: Embeddings): MapState {
    const dir = this.runDir(run);
    const cached = readUmapCache(dir, kind, e);
    if (cached) {
      return {
        map: cached,
        pending: false,
        note: `UMAP (umap-js: ${UMAP_NEIGHBOURS} neighbours, min_dist ${UMAP_MIN_DIST}, seed ` +
          `${UMAP_SEED}), computed once and cached in embeddings-${kind}.map-umap.json.`,
      };
    }
    const key = `${dir}|${kind}|${fingerprint(e)}`;
    const map = this.pca(key, e);
    const pca = `PCA: the two leading components hold ${
      Math.round((map.explained ?? 0) * 100)
    }% of the variance`;
    if (!umapApplies(e.count)) {
      const why = e.count < UMAP_MIN_COUNT
        ? `${e.count} points are too few for UMAP (it needs ${UMAP_MIN_COUNT})`
        : `UMAP is not computed for more than ${UMAP_MAX_COUNT.toLocaleString("en")} points`;
      return { map, pending: false, note: `${pca}; ${why}.` };
    }
    const failed = this.failures.get(key);
    if (failed) return { map, pending: false, note: `${pca}; UMAP failed: ${failed}.` };
    this.start(key, { dir, kind });
    return {
      map,
      pending: true,
      note: `${pca}. UMAP is being computed in the background; the map switches to it when ready.`,
    };
  }

  /** PCA of these vectors, kept for the next requests (the page, then its JSON, then polls). */
  private pca(key: string, e: Embeddings): EmbeddingMap {
    let map = this.pcaMaps.get(key);
    if (!map) {
      map = pcaMap(e);
      this.pcaMaps.set(key, map);
      // The few most recent maps: Map keeps insertion order, the first is the oldest.
      if (this.pcaMaps.size > PCA_KEPT) this.pcaMaps.delete(this.pcaMaps.keys().next().value!);
    }
    return map;
  }

  private start(key: string, request: UmapRequest): void {
    if (this.workers.has(key)) return;
    const worker = new Worker(new URL("./umap_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const finish = (error: string | null) => {
      if (error) {
        this.failures.set(key, error);
        console.error(`dashboard: UMAP of ${request.dir} ${request.kind}: ${error}`);
      }
      worker.terminate();
      this.workers.delete(key);
    };
    worker.onmessage = (ev: MessageEvent<UmapReply>) => finish(ev.data.ok ? null : ev.data.error);
    worker.onerror = (ev) => {
      ev.preventDefault();
      finish(ev.message);
    };
    this.workers.set(key, worker);
    worker.postMessage(request);
  }

  /** Stops the workers (the server is closing). */
  close(): void {
    for (const worker of this.workers.values()) worker.terminate();
    this.workers.clear();
  }
}
