/**
 * Bind groups reused by dispatches that bind the same layout to the same buffer ranges: a decoding
 * loop binds the same weights, pooled outputs and parameters token after token. Creating a bind
 * group costs Deno about ten microseconds of host time, a tenth of a small kernel's whole call on
 * a CPU adapter. A buffer is keyed by an id per GPUBuffer object, never reused: a destroyed buffer
 * is not bound again, so its groups are only dead weight until the cache fills and is emptied.
 */
export class BindGroupCache {
  private ids = new WeakMap<GPUBuffer | GPUBindGroupLayout, number>();
  private nextId = 0;
  private groups = new Map<string, GPUBindGroup>();

  constructor(private device: GPUDevice, readonly capacity = 4096) {}

  /** The bind group of `layout` over `entries` (whole-buffer ranges given with offset and size). */
  get(label: string, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[]): GPUBindGroup {
    let key = `${this.id(layout)}`;
    for (const e of entries) {
      const r = e.resource as GPUBufferBinding;
      key += `|${e.binding}:${this.id(r.buffer)}:${r.offset}:${r.size}`;
    }
    const cached = this.groups.get(key);
    if (cached) return cached;
    if (this.groups.size >= this.capacity) this.groups.clear();
    const group = this.device.createBindGroup({ label, layout, entries });
    this.groups.set(key, group);
    return group;
  }

  get size(): number {
    return this.groups.size;
  }

  private id(o: GPUBuffer | GPUBindGroupLayout): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, id = this.nextId++);
    return id;
  }
}
