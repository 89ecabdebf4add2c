/** Compute pipelines cached by shader text + override constants. */

export interface PipelineKey {
  kernel: string;
  shader: string;
  entry?: string;
  constants?: Record<string, number>;
}

export class PipelineCache {
  /**
   * By shader text, then entry and constants: a lookup hashes the kernel's own source string
   * (whose hash the engine keeps) instead of a new key holding it, which cost ~30 µs a dispatch
   * on long shaders.
   */
  private cache = new Map<string, Map<string, GPUComputePipeline>>();
  private modules = new Map<string, GPUShaderModule>();
  compiled = 0;

  constructor(
    private device: GPUDevice,
    /** Receives the error scope of each creation, so a bad shader is reported with its kernel. */
    private track: (what: string, scope: Promise<GPUError | null>) => void,
  ) {}

  get(key: PipelineKey): GPUComputePipeline {
    const constants = key.constants ?? {};
    const constKey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",");
    const id = `${key.entry ?? "main"}|${constKey}`;
    let variants = this.cache.get(key.shader);
    if (!variants) {
      variants = new Map();
      this.cache.set(key.shader, variants);
    }
    let pipeline = variants.get(id);
    if (pipeline) return pipeline;
    this.device.pushErrorScope("validation");
    let module = this.modules.get(key.shader);
    if (!module) {
      module = this.device.createShaderModule({ code: key.shader, label: key.kernel });
      this.modules.set(key.shader, module);
    }
    // The async variant has been unreliable in Deno; the sync one is what we use everywhere.
    pipeline = this.device.createComputePipeline({
      label: key.kernel,
      layout: "auto",
      compute: { module, entryPoint: key.entry ?? "main", constants },
    });
    this.track(`compiling kernel ${key.kernel}`, this.device.popErrorScope());
    variants.set(id, pipeline);
    this.compiled++;
    return pipeline;
  }

  /** Pipelines cached (none is ever dropped). */
  get size(): number {
    return this.compiled;
  }
}
