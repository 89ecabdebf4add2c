/** Compute pipelines cached by shader text + override constants. */

export interface PipelineKey {
  kernel: string;
  shader: string;
  entry?: string;
  constants?: Record<string, number>;
}

export class PipelineCache {
  private cache = new Map<string, GPUComputePipeline>();
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
    const id = `${key.entry ?? "main"}|${constKey}|${key.shader}`;
    let pipeline = this.cache.get(id);
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
    this.cache.set(id, pipeline);
    this.compiled++;
    return pipeline;
  }

  get size(): number {
    return this.cache.size;
  }
}
