/**
 * One line per event (JSON with --json), and a live progress line (steps/s, ETA) only on an
 * interactive terminal outside CI, so logs in files and CI stay clean.
 */
import { formatBytes } from "../gpu/allocator.ts";
import type { TrainEvent } from "./events.ts";

export interface LogOptions {
  json: boolean;
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
  /** Whether to draw the progress line; default: stderr is a TTY and CI is unset. */
  progress?: boolean;
}

export class Logger {
  private readonly write: (line: string) => void;
  private readonly showProgress: boolean;
  private progressDrawn = false;
  private progressStart = 0;

  constructor(readonly opts: LogOptions) {
    this.write = opts.write ?? ((line) => console.log(line));
    this.showProgress = opts.progress ??
      (Deno.stderr.isTerminal() && !Deno.env.get("CI"));
  }

  event(type: string, fields: Record<string, unknown> = {}): void {
    this.clearProgress();
    if (this.opts.json) {
      this.write(JSON.stringify({ event: type, time: new Date().toISOString(), ...fields }));
      return;
    }
    const parts = Object.entries(fields).map(([k, v]) =>
      `${k}=${k.endsWith("_bytes") && typeof v === "number" ? formatBytes(v) : formatValue(v)}`
    );
    this.write([type, ...parts].join(" "));
  }

  /** A training event in the format sweeps read back (events.ts). */
  emit(ev: TrainEvent): void {
    const { event, ...fields } = ev;
    this.event(event, fields);
  }

  /** Redraws the progress line: `label done/total  steps/s  ETA  extra`. */
  progress(label: string, done: number, total: number, extra = ""): void {
    if (!this.showProgress) return;
    const now = performance.now();
    if (done <= 1 || !this.progressStart) this.progressStart = now;
    const rate = done > 1 ? (done - 1) / ((now - this.progressStart) / 1000) : 0;
    const eta = rate > 0 ? (total - done) / rate : NaN;
    const line = `${label} ${done}/${total} ${rate.toFixed(2)} steps/s ETA ${
      formatDuration(eta)
    } ${extra}`;
    Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[2K${line}`));
    this.progressDrawn = true;
  }

  clearProgress(): void {
    if (!this.progressDrawn) return;
    Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[2K"));
    this.progressDrawn = false;
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function formatValue(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5);
  if (typeof v === "string") return /\s/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}
