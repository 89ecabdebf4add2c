/** Number and time formatting shared by the dashboard's pages. */
import { formatBytes } from "../gpu/allocator.ts";

export const DASH = "—";

export function bytes(n: number | null | undefined): string {
  return n === null || n === undefined ? DASH : formatBytes(n);
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return DASH;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (v: number) => String(v).padStart(2, "0");
  return h ? `${h} h ${pad(m)} min` : `${m} min ${pad(s % 60)} s`;
}

/** Ranking metrics are read to four places (NDCG@10 0.3061). */
export function metric(v: number | null | undefined): string {
  return v === null || v === undefined ? DASH : v.toFixed(4);
}

export function number(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return DASH;
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

/** An ISO time as "2026-11-29 10:37 UTC". */
export function time(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** An ISO time without the zone, for table columns whose header says UTC. */
export function shortTime(iso: string | null | undefined): string {
  const t = time(iso);
  return t.endsWith(" UTC") ? t.slice(0, -4) : t;
}

/** A config value as text: strings as they are, everything else as JSON. */
export function value(v: unknown): string {
  if (v === null || v === undefined) return DASH;
  return typeof v === "string" ? v : JSON.stringify(v);
}

/**
 * Config keys that hold byte counts: the training memory limit and any key named `…Bytes`. Their
 * values read as "100 MiB", not 104857600.
 */
function isByteKey(key: string): boolean {
  return key === "memoryLimit" || /Bytes$/.test(key);
}

/** A config value as the config tables show it: byte counts in binary units. */
export function configValue(key: string, v: unknown): string {
  if (typeof v === "number" && Number.isFinite(v) && isByteKey(key)) return bytes(v);
  return value(v);
}

/** A run, sweep or trial status as words ("exceeds budget", not `exceeds_budget`). */
export function statusText(status: string): string {
  return status.replaceAll("_", " ");
}
