/**
 * Every GPU buffer of the engine goes through this allocator. WebGPU has no memory query, so the
 * allocator's counters are the memory figure of every benchmark: `liveBytes` is what tensors hold,
 * `reservedBytes` adds the freed buffers kept for reuse, and the peaks are their high-water marks.
 */

export class OutOfMemoryError extends Error {
  constructor(public wanted: number, public limit: number, public reserved: number, what: string) {
    super(
      `out of GPU memory: ${what} wants ${formatBytes(wanted)} (${wanted} bytes) but ` +
        `${formatBytes(reserved)} is already reserved and the limit is ${formatBytes(limit)} ` +
        `(${limit} bytes)`,
    );
    this.name = "OutOfMemoryError";
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

/** Parses "512MiB", "2GiB", "1.5GB", "1000" (bytes). */
export function parseBytes(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a byte size: "${text}" (try 512MiB or 2GiB)`);
  const unit = (m[2] ?? "").toLowerCase().replace(/b$/, "");
  const powers: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4 };
  const base = unit.endsWith("i") ? 1024 : 1000;
  const p = powers[unit.replace("i", "")];
  if (p === undefined) throw new Error(`unknown byte unit in "${text}"`);
  return Math.round(Number(m[1]) * base ** p);
}

export interface GpuAllocation {
  readonly buffer: GPUBuffer;
  /** Bytes the caller asked for. */
  readonly bytes: number;
  /** Bytes of the underlying buffer (a size class, >= bytes). */
  readonly capacity: number;
  readonly usage: number;
  released: boolean;
  /** Tensors sharing this buffer (reshape aliases); it is released when the last one goes. */
  refs: number;
}

export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Size classes: multiples of 256 B below 64 KiB, then quarter steps between powers of two. */
export function sizeClass(bytes: number): number {
  const n = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (n <= 65536) return n;
  const p = 2 ** Math.floor(Math.log2(n));
  const step = p / 4;
  return Math.ceil(n / step) * step;
}

/**
 * Freed buffers kept for reuse are capped at this fraction of the peak live bytes (with a floor):
 * batch shapes change every step (trimmed padding, variable position counts), and an unbounded
 * pool would keep a buffer of every size ever seen, making the reserved figure meaningless.
 */
const POOL_FRACTION = 1 / 8;
const POOL_FLOOR_BYTES = 4 * 1024 * 1024;
/**
 * With steady shapes a request may take a pooled buffer up to this many times its size class:
 * batches whose sizes drift by a few percent (CoLES slices, ragged packed events) then find
 * last step's buffers instead of creating ~40 a step (~0.17 ms each on llvmpipe, besides
 * zeroing them on first use).
 */
const STEADY_REUSE_SLACK = 2;

export class Allocator {
  liveBytes = 0;
  peakLiveBytes = 0;
  reservedBytes = 0;
  peakReservedBytes = 0;
  allocations = 0;
  reuses = 0;
  evictions = 0;
  /** Freed bytes kept for reuse, as a fraction of the peak live bytes (see withSteadyShapes). */
  private poolFraction = POOL_FRACTION;
  /**
   * Largest pooled capacity a request may take, as a multiple of its own size class (1: only its
   * class; see withSteadyShapes).
   */
  private reuseSlack = 1;
  /** Freed buffers by usage, then by capacity. */
  private pool = new Map<number, Map<number, GPUBuffer[]>>();
  /** Pooled buffers, least recently freed first: eviction order. */
  private poolOrder: { usage: number; buffer: GPUBuffer; capacity: number }[] = [];
  /**
   * Evicted buffers wait here until the commands already recorded are submitted: destroying a
   * buffer that an unsubmitted command uses would fail that submit.
   */
  private retired: GPUBuffer[] = [];

  constructor(
    private device: GPUDevice,
    /** The most bytes the allocator may reserve (device memory budget). */
    public limitBytes: number,
    private maxBufferSize: number,
  ) {}

  /** Bytes of freed buffers kept for reuse. */
  get pooledBytes(): number {
    return this.reservedBytes - this.liveBytes;
  }

  alloc(bytes: number, what: string, usage = STORAGE_USAGE): GpuAllocation {
    if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`${what}: invalid size ${bytes}`);
    const capacity = sizeClass(bytes);
    if (capacity > this.maxBufferSize) {
      throw new OutOfMemoryError(
        bytes,
        this.maxBufferSize,
        this.reservedBytes,
        `${what} (one buffer)`,
      );
    }
    const pooled = this.takePooled(usage, capacity, capacity * this.reuseSlack);
    if (pooled) {
      this.reuses++;
      return this.lend(pooled.buffer, bytes, pooled.capacity, usage);
    }
    this.evictDownTo(this.poolLimit());
    // A steady pool keeps up to the peak live bytes, but a new buffer first displaces pooled
    // ones so that the reserved bytes stay within what the bounded pool allows (the peak live
    // bytes and a bounded pool beside them).
    if (this.poolFraction > POOL_FRACTION) {
      const bound = this.peakLiveBytes + this.boundedPoolLimit();
      this.evictDownTo(this.pooledBytes - (this.reservedBytes + capacity - bound));
    }
    if (this.reservedBytes + capacity > this.limitBytes) this.trimPool();
    if (this.reservedBytes + capacity > this.limitBytes) {
      throw new OutOfMemoryError(bytes, this.limitBytes, this.reservedBytes, what);
    }
    const buffer = this.device.createBuffer({ size: capacity, usage, label: what });
    this.reservedBytes += capacity;
    this.peakReservedBytes = Math.max(this.peakReservedBytes, this.reservedBytes);
    this.allocations++;
    return this.lend(buffer, bytes, capacity, usage);
  }

  private lend(buffer: GPUBuffer, bytes: number, capacity: number, usage: number): GpuAllocation {
    this.liveBytes += capacity;
    this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    return { buffer, bytes, capacity, usage, released: false, refs: 1 };
  }

  /** Returns a buffer to the pool; its contents are undefined for the next owner. */
  release(a: GpuAllocation): void {
    if (a.released) return;
    a.released = true;
    this.liveBytes -= a.capacity;
    let byCapacity = this.pool.get(a.usage);
    if (!byCapacity) this.pool.set(a.usage, byCapacity = new Map());
    const list = byCapacity.get(a.capacity);
    if (list) list.push(a.buffer);
    else byCapacity.set(a.capacity, [a.buffer]);
    this.poolOrder.push({ usage: a.usage, buffer: a.buffer, capacity: a.capacity });
    this.evictDownTo(this.poolLimit());
  }

  /** Evicts every pooled buffer. */
  trimPool(): void {
    this.evictDownTo(0);
  }

  /** Destroys the evicted buffers; call once the commands that may use them are submitted. */
  destroyRetired(): void {
    for (const b of this.retired) b.destroy();
    this.retired = [];
  }

  /** Starts a new measurement window: peaks restart from the current figures. */
  resetPeaks(): void {
    this.peakLiveBytes = this.liveBytes;
    this.peakReservedBytes = this.reservedBytes;
  }

  stats() {
    return {
      liveBytes: this.liveBytes,
      peakLiveBytes: this.peakLiveBytes,
      reservedBytes: this.reservedBytes,
      peakReservedBytes: this.peakReservedBytes,
      allocations: this.allocations,
      reuses: this.reuses,
      evictions: this.evictions,
    };
  }

  /**
   * Runs `body` with a pool that may keep as many bytes as were ever live at once: for loops
   * whose every step allocates the same or nearly the same shapes (language-model windows, CoLES
   * slices), so that what one step frees the next takes back. A request may take a pooled buffer
   * of up to STEADY_REUSE_SLACK times its size class (it counts that buffer's real size as live),
   * and a buffer that must be created first evicts pooled ones, so that the reserved bytes stay
   * within the peak live bytes plus what the bounded pool may keep. With the bounded pool a
   * language-model step created ~150 buffers anew (~10% of its time on llvmpipe), a CoLES step
   * ~42; here 6 and 5. The bound returns afterwards, evicting the excess.
   */
  async withSteadyShapes<T>(body: () => Promise<T>): Promise<T> {
    this.poolFraction = 1;
    this.reuseSlack = STEADY_REUSE_SLACK;
    try {
      return await body();
    } finally {
      this.poolFraction = POOL_FRACTION;
      this.reuseSlack = 1;
      this.evictDownTo(this.poolLimit());
    }
  }

  private poolLimit(): number {
    return Math.max(POOL_FLOOR_BYTES, this.peakLiveBytes * this.poolFraction);
  }

  private boundedPoolLimit(): number {
    return Math.max(POOL_FLOOR_BYTES, this.peakLiveBytes * POOL_FRACTION);
  }

  /** The pooled buffer of the smallest capacity in [capacity, most], taken out of the pool. */
  private takePooled(
    usage: number,
    capacity: number,
    most: number,
  ): { buffer: GPUBuffer; capacity: number } | undefined {
    const byCapacity = this.pool.get(usage);
    if (!byCapacity) return undefined;
    let best = byCapacity.has(capacity) ? capacity : Infinity;
    if (best === Infinity && most > capacity) {
      for (const c of byCapacity.keys()) if (c > capacity && c <= most && c < best) best = c;
    }
    if (best === Infinity) return undefined;
    const list = byCapacity.get(best)!;
    const buffer = list.pop()!;
    if (!list.length) byCapacity.delete(best);
    const at = this.poolOrder.findLastIndex((p) => p.buffer === buffer);
    this.poolOrder.splice(at, 1);
    return { buffer, capacity: best };
  }

  private evictDownTo(limit: number): void {
    let drop = 0;
    while (drop < this.poolOrder.length && this.pooledBytes > limit) {
      const { usage, buffer, capacity } = this.poolOrder[drop++];
      const byCapacity = this.pool.get(usage)!;
      const list = byCapacity.get(capacity)!;
      list.splice(list.indexOf(buffer), 1);
      if (!list.length) byCapacity.delete(capacity);
      this.reservedBytes -= capacity;
      this.retired.push(buffer);
      this.evictions++;
    }
    if (drop) this.poolOrder.splice(0, drop);
  }
}
