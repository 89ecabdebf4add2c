/**
 * The trial queue on Redis (BullMQ): the URL a sweep and its workers share, the checked
 * connection, what a job carries there and back, and ASHA's rung table for trials run on workers.
 * Keys live under the `cutrec:` prefix: `cutrec:trials:*` for the queue, `cutrec:asha:*` for rungs.
 */
import { Queue } from "bullmq";
import { Redis, type RedisOptions } from "ioredis";
import type { MetricPoint, RunRecord } from "../store/runs.ts";
import type { TrialOutcome } from "./process.ts";
import { type AshaPlan, type RungBoard, rungCutoff } from "./search.ts";

export const QUEUE_NAME = "trials";
export const QUEUE_PREFIX = "cutrec";

/** How long a first connection may take before the URL is reported unreachable. */
const CONNECT_TIMEOUT_MS = 3000;

/** A Redis server as `redis://HOST:PORT[/DB]` names it. */
export interface RedisTarget {
  url: string;
  host: string;
  port: number;
  db: number;
  password?: string;
}

/** What a trial job carries to a worker. */
export interface TrialJobData {
  sweepId: string;
  key: string;
  /** The coordinator's attempt number for this trial (part of the job id). */
  attempt: number;
  /** Training flags, the sweep's included, without --out and --sweep-id (the worker sets them). */
  argv: string[];
  estimateBytes: number;
  asha: AshaPlan | null;
}

/** What a worker sends back: how the trial ended, who ran it, and its run with its metrics. */
export interface TrialJobResult extends TrialOutcome {
  worker: string;
  run: RunRecord | null;
  metrics: MetricPoint[];
}

/** A job's progress while a worker holds it; `failed` is set when an attempt fails. */
export interface TrialJobProgress {
  worker: string;
  run: string | null;
  startedAt: string;
  failed?: TrialJobResult;
}

/** Parses `redis://HOST:PORT[/DB]`; anything else is an error naming `flag` and the form. */
export function parseRedisUrl(url: string, flag: string): RedisTarget {
  const form = "expected redis://HOST:PORT[/DB], e.g. redis://127.0.0.1:6379/0";
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${flag} ${url}: not a URL (${form})`);
  }
  if (u.protocol !== "redis:") {
    throw new Error(`${flag} ${url}: the scheme must be redis: (${form})`);
  }
  if (!u.hostname) throw new Error(`${flag} ${url}: no host (${form})`);
  const path = u.pathname.replace(/^\//, "");
  if (!/^\d*$/.test(path) || u.search || u.hash) {
    throw new Error(`${flag} ${url}: the path may only be a database number (${form})`);
  }
  return {
    url,
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port ? Number(u.port) : 6379,
    db: path ? Number(path) : 0,
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
  };
}

/**
 * Options for BullMQ's own connections: they retry for ever (a Redis restarted with its AOF is
 * waited for, not given up on), and a blocking worker connection needs maxRetriesPerRequest null.
 */
export function connectionOf(t: RedisTarget): RedisOptions {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    password: t.password,
    maxRetriesPerRequest: null,
  };
}

/** Connects once, without retrying, so an unreachable URL is refused at once with its reason. */
export async function checkRedis(url: string, flag: string): Promise<RedisTarget> {
  const target = parseRedisUrl(url, flag);
  const client = new Redis({
    ...connectionOf(target),
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The failure is reported by connect()'s rejection; without a listener ioredis prints it too.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new Error(
      `${flag} ${url}: cannot reach Redis at ${target.host}:${target.port} ` +
        `(${(e as Error).message || (e as Error).name}); start redis-server there or name a ` +
        "reachable server as redis://HOST:PORT[/DB]",
    );
  } finally {
    client.disconnect();
  }
  return target;
}

/**
 * A job's id: sweep, attempt and trial key. The key is URI-encoded because BullMQ refuses ids with
 * ":" (a data path may hold one); the same trial and attempt always name the same job, so adding
 * it again (a restarted coordinator) finds the one already there.
 */
export function jobIdOf(sweepId: string, attempt: number, key: string): string {
  return `${sweepId}.${attempt}.${encodeURIComponent(key)}`;
}

/** The coordinator's side: the queue it adds trial jobs to and reads them back from. */
export interface TrialQueue {
  target: RedisTarget;
  queue: Queue<TrialJobData, TrialJobResult>;
  close(): Promise<void>;
}

export async function connectQueue(url: string, flag: string): Promise<TrialQueue> {
  const target = await checkRedis(url, flag);
  const queue = new Queue<TrialJobData, TrialJobResult>(QUEUE_NAME, {
    connection: connectionOf(target),
    prefix: QUEUE_PREFIX,
  });
  await queue.waitUntilReady();
  return { target, queue, close: () => queue.close() };
}

/**
 * ASHA's rung table for trials run on workers: one Redis hash per sweep and rung, trial key →
 * value. Reading the others and writing its own value is one MULTI, so two trials reaching a rung
 * at once each see a consistent table.
 */
export class RedisRungBoard implements RungBoard {
  constructor(
    private readonly redis: Redis,
    private readonly sweepId: string,
    private readonly eta: number,
  ) {}

  async report(rung: number, key: string, value: number): Promise<{ cutoff: number | null }> {
    const hash = `${QUEUE_PREFIX}:asha:${this.sweepId}:${rung}`;
    const replies = await this.redis.multi().hgetall(hash).hset(hash, key, String(value)).exec();
    const [error, table] = replies![0];
    if (error) throw error;
    const others = Object.entries(table as Record<string, string>)
      .filter(([k]) => k !== key)
      .map(([, v]) => Number(v));
    return { cutoff: rungCutoff(others, this.eta) };
  }
}
