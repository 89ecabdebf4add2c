/** Compute pipelines cached by shader text + override constants. */

export interface PipelineKey {
  kernel: string;
  shader: string;
  entry?: string;
  constants?: Record<string, number>;
}

/** A compiled pipeline with the layout of its bind group 0 (looked up once, not per dispatch). */
export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

export class PipelineCache {
  /**
   * By shader text, then by entry point and constants. A kernel passes the same string object at
   * every dispatch, whose hash V8 keeps, so a lookup does not rehash kilobytes of WGSL per call
   * (one key joining text, entry and constants was a fresh string each time).
   */
  private cache = new Map<string, Map<string, CachedPipeline>>();
  private modules = new Map<string, GPUShaderModule>();
  compiled = 0;

  constructor(
    private device: GPUDevice,
    /** Receives the error scope of each creation, so a bad shader is reported with its kernel. */
    private track: (what: string, scope: Promise<GPUError | null>) => void,
  ) {}

  get(key: PipelineKey): CachedPipeline {
    const constants = key.constants ?? {};
    const constKey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",");
    const id = `${key.entry ?? "main"}|${constKey}`;
    let variants = this.cache.get(key.shader);
    if (!variants) this.cache.set(key.shader, variants = new Map());
    const cached = variants.get(id);
    if (cached) return cached;
    this.device.pushErrorScope("validation");
    let module = this.modules.get(key.shader);
    if (!module) {
      module = this.device.createShaderModule({ code: key.shader, label: key.kernel });
      this.modules.set(key.shader, module);
    }
    // The async variant has been unreliable in Deno; the sync one is what we use everywhere.
    const pipeline = this.device.createComputePipeline({
      label: key.kernel,
      layout: "auto",
      compute: { module, entryPoint: key.entry ?? "main", constants },
    });
    const created = { pipeline, layout: pipeline.getBindGroupLayout(0) };
    this.track(`compiling kernel ${key.kernel}`, this.device.popErrorScope());
    variants.set(id, created);
    this.compiled++;
    return created;
  }

  /** Pipelines cached (none is ever dropped). */
  get size(): number {
    return this.compiled;
  }
}
