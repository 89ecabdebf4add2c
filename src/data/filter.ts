/**
 * Filters applied while preparing a dataset: the rating threshold (applied row by row as a log is
 * read, so rejected rows never take memory) and iterative k-core filtering of users and items.
 */
import type { Dataset } from "./dataset.ts";

/** Inclusive threshold: `minRating` 4 keeps ratings 4 and above. No threshold keeps everything. */
export function passesRating(rating: number, minRating: number | undefined): boolean {
  return minRating === undefined || rating >= minRating;
}

/** Minimum interactions per user and per item (duplicates count: they are interactions). */
export interface KCore {
  users: number;
  items: number;
}

/**
 * Iterative k-core: repeatedly drops users with fewer than `users` interactions and items with
 * fewer than `items` interactions until both hold everywhere (dropping an item can push a user
 * under the bar, and back). Surviving items are re-densified keeping their relative order;
 * surviving users keep theirs; timestamps and original ids follow.
 */
export function kCore(ds: Dataset, k: number | Partial<KCore>): Dataset {
  const need = typeof k === "number" ? { users: k, items: k } : { users: 1, items: 1, ...k };
  const liveUser = new Uint8Array(ds.users).fill(1);
  const liveItem = new Uint8Array(ds.items + 1).fill(1);
  liveItem[0] = 0;
  let changed = true;
  while (changed) {
    changed = dropUsers(ds.sequences, liveUser, liveItem, need.users);
    changed = dropItems(ds.sequences, liveUser, liveItem, need.items) || changed;
  }
  return keepLive(ds, liveUser, liveItem);
}

/** Drops users under `k` live items; reports whether any was dropped. */
function dropUsers(seqs: Int32Array[], liveUser: Uint8Array, liveItem: Uint8Array, k: number) {
  let changed = false;
  for (let u = 0; u < seqs.length; u++) {
    if (!liveUser[u]) continue;
    if (countLive(seqs[u], liveItem) < k) {
      liveUser[u] = 0;
      changed = true;
    }
  }
  return changed;
}

/** Drops items with fewer than `k` interactions from live users; reports whether any was. */
function dropItems(seqs: Int32Array[], liveUser: Uint8Array, liveItem: Uint8Array, k: number) {
  const counts = new Float64Array(liveItem.length);
  for (let u = 0; u < seqs.length; u++) {
    if (!liveUser[u]) continue;
    const s = seqs[u];
    for (let i = 0; i < s.length; i++) counts[s[i]]++;
  }
  let changed = false;
  for (let i = 1; i < liveItem.length; i++) {
    if (liveItem[i] && counts[i] < k) {
      liveItem[i] = 0;
      changed = true;
    }
  }
  return changed;
}

function countLive(seq: Int32Array, liveItem: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < seq.length; i++) n += liveItem[seq[i]];
  return n;
}

/** The dataset restricted to live users and items, with item ids made dense again. */
function keepLive(ds: Dataset, liveUser: Uint8Array, liveItem: Uint8Array): Dataset {
  const newId = denseIds(liveItem);
  const sequences: Int32Array[] = [];
  const timestamps: Float64Array[] = [];
  const users: number[] = [];
  for (let u = 0; u < ds.users; u++) {
    if (!liveUser[u]) continue;
    const s = ds.sequences[u];
    const keep = (_: number, i: number) => liveItem[s[i]] === 1;
    sequences.push(s.filter(keep).map((v) => newId[v]));
    if (ds.timestamps) timestamps.push(ds.timestamps[u].filter(keep));
    users.push(u);
  }
  const items = maxOf(newId);
  const out: Dataset = { name: ds.name, items, users: sequences.length, sequences };
  if (ds.timestamps) out.timestamps = timestamps;
  if (ds.originalItemIds) out.originalItemIds = remapNames(ds.originalItemIds, liveItem);
  if (ds.originalUserIds) out.originalUserIds = users.map((u) => ds.originalUserIds![u]);
  return out;
}

/**
 * Removes item ids that no sequence uses and makes the rest dense again (order kept). Useful
 * after any filtering that can orphan items.
 */
export function compactItems(ds: Dataset): Dataset {
  const used = new Uint8Array(ds.items + 1);
  for (const s of ds.sequences) for (let i = 0; i < s.length; i++) used[s[i]] = 1;
  return keepLive(ds, new Uint8Array(ds.users).fill(1), used);
}

/** old id → new dense id (0 for dropped ids), keeping the order of the survivors. */
function denseIds(live: Uint8Array): Int32Array {
  const map = new Int32Array(live.length);
  let next = 0;
  for (let i = 1; i < live.length; i++) if (live[i]) map[i] = ++next;
  return map;
}

function maxOf(a: Int32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}

function remapNames(names: string[], live: Uint8Array): string[] {
  const out = [""];
  for (let i = 1; i < live.length; i++) if (live[i]) out.push(names[i]);
  return out;
}
