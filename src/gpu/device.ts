/** Adapter and device acquisition with the adapter's real limits. */

export class NoAdapterError extends Error {
  constructor(detail = "") {
    super(
      "No WebGPU adapter found" + (detail ? ` (${detail})` : "") +
        ". Without a GPU, Deno runs WebGPU on Mesa's software rasteriser: install it with " +
        "`apt-get install -y mesa-vulkan-drivers libgl1-mesa-dri` and, for the Vulkan path, set " +
        "DENO_WEBGPU_BACKEND=vulkan. On a machine with a GPU, install its Vulkan driver.",
    );
    this.name = "NoAdapterError";
  }
}

/** Limits that the engine relies on, read from the adapter as plain numbers. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
  maxUniformBufferBindingSize: number;
}

const LIMIT_NAMES: (keyof GpuLimits)[] = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
  "maxUniformBufferBindingSize",
];

export interface AcquiredDevice {
  device: GPUDevice;
  limits: GpuLimits;
  /** One line naming the adapter, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) [fallback]". */
  adapterName: string;
  hasTimestamps: boolean;
  /** A CPU implementation (llvmpipe, lavapipe, SwiftShader): its memory is system memory. */
  isSoftware: boolean;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Request timestamp-query when the adapter has it (only needed for profiling). */
  timestamps?: boolean;
}

export async function acquireDevice(opts: AcquireOptions = {}): Promise<AcquiredDevice> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new NoAdapterError("navigator.gpu is missing from this runtime");
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await navigator.gpu.requestAdapter({
      powerPreference: opts.powerPreference ?? "high-performance",
    });
  } catch (e) {
    throw new NoAdapterError(String(e));
  }
  if (!adapter) throw new NoAdapterError();
  // Deno's WebGPU: adapter info must be read before requestDevice consumes the adapter.
  const info = adapter.info;
  const adapterName = describeAdapter(info);
  const limits = {} as GpuLimits;
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const value = Number(adapter.limits[name]);
    limits[name] = value;
    requiredLimits[name] = value;
  }
  const hasTimestamps = (opts.timestamps ?? true) && adapter.features.has("timestamp-query");
  const requiredFeatures: GPUFeatureName[] = hasTimestamps ? ["timestamp-query"] : [];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const isSoftware = info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(adapterName);
  return { device, limits, adapterName, hasTimestamps, isSoftware };
}

function describeAdapter(info: GPUAdapterInfo): string {
  const parts = [info.description, info.vendor && `vendor ${info.vendor}`].filter(Boolean);
  const name = parts.length ? parts.join(", ") : "unknown adapter";
  return info.isFallbackAdapter ? `${name} [software]` : name;
}

/** A short file-name-safe slug of the adapter, e.g. "llvmpipe" or "nvidia-h200". */
export function adapterSlug(adapterName: string): string {
  const first = adapterName.split(/[,(\[]/)[0].trim().toLowerCase();
  return first.replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "adapter";
}
