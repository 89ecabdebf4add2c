/** Adapter and device acquisition with the adapter's real limits. */

export class NoAdapterError extends Error {
  constructor(detail = "") {
    super(
      "No WebGPU adapter found" + (detail ? ` (${detail})` : "") +
        ". Without a GPU, Deno runs WebGPU on Mesa's software rasteriser: install it with " +
        "`apt-get install -y libegl1 libgl1-mesa-dri` (llvmpipe, the faster software path) or " +
        "`mesa-vulkan-drivers` (lavapipe). On a machine with a GPU, install its Vulkan driver.",
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
  /** The WebGPU backend it runs on: "gl", "vulkan", …, or "default" (the runtime's choice). */
  backend: string;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /**
   * A WebGPU backend ("gl", "vulkan", …) to use instead of the choice below; default
   * DENO_WEBGPU_BACKEND when set.
   */
  backend?: string;
  /** Request timestamp-query when the adapter has it (only needed for profiling). */
  timestamps?: boolean;
}

/**
 * Loop iterations one invocation may run in a dispatch: half of llvmpipe's cap, which counts the
 * iterations of all of an invocation's loops together and silently ends them past ~65,535.
 */
export const LOOP_BUDGET = 32768;

/** The variable Deno reads, on every adapter request, to pick the WebGPU backends it tries. */
export const BACKEND_VARIABLE = "DENO_WEBGPU_BACKEND";
/**
 * The software backend preferred when no hardware adapter exists: Mesa's llvmpipe behind GL ran
 * training 1.5–2× faster than lavapipe behind Vulkan on the same machine (README, bench:ops
 * --backends gl,vulkan), yet Deno picks Vulkan first once `mesa-vulkan-drivers` is installed.
 */
export const FASTEST_SOFTWARE_BACKEND = "gl";

/**
 * The adapter to train on: the requested backend's, else the runtime's first choice unless that
 * is a software adapter and the faster software backend has one.
 */
async function chooseAdapter(
  opts: AcquireOptions,
): Promise<{ adapter: GPUAdapter; backend: string }> {
  const requested = opts.backend ?? Deno.env.get(BACKEND_VARIABLE);
  if (requested) {
    const adapter = await requestAdapterOn(requested, opts);
    if (!adapter) throw new NoAdapterError(`no adapter on the ${requested} backend`);
    return { adapter, backend: requested };
  }
  // Without a GPU device node only software adapters exist: asking the runtime's first choice
  // would start lavapipe just to drop it (and Mesa's Vulkan loader complains on stderr).
  const first = mayHaveHardwareGpu() ? await requestAdapterOn(null, opts) : null;
  if (first && !isSoftwareAdapter(first.info)) return { adapter: first, backend: "default" };
  const software = await requestAdapterOn(FASTEST_SOFTWARE_BACKEND, opts).catch(() => null);
  if (software) return { adapter: software, backend: FASTEST_SOFTWARE_BACKEND };
  const fallback = first ?? await requestAdapterOn(null, opts);
  if (fallback) return { adapter: fallback, backend: "default" };
  throw new NoAdapterError();
}

/** False only where a GPU is surely absent: Linux with no DRM render node and no NVIDIA device. */
function mayHaveHardwareGpu(): boolean {
  if (Deno.build.os !== "linux") return true;
  const exists = (path: string) => {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  };
  if (exists("/dev/nvidia0")) return true;
  try {
    return [...Deno.readDirSync("/dev/dri")].some((e) => e.name.startsWith("renderD"));
  } catch {
    return false;
  }
}

/**
 * An adapter request with DENO_WEBGPU_BACKEND set to `backend` for its duration (null: as it is;
 * "": unset, every backend).
 */
async function requestAdapterOn(
  backend: string | null,
  opts: AcquireOptions,
): Promise<GPUAdapter | null> {
  const before = Deno.env.get(BACKEND_VARIABLE);
  // "" asks for every backend: the variable is removed for the request.
  if (backend === "") Deno.env.delete(BACKEND_VARIABLE);
  else if (backend !== null) Deno.env.set(BACKEND_VARIABLE, backend);
  try {
    return await navigator.gpu.requestAdapter({
      powerPreference: opts.powerPreference ?? "high-performance",
    });
  } catch (e) {
    throw new NoAdapterError(String(e));
  } finally {
    if (before === undefined) Deno.env.delete(BACKEND_VARIABLE);
    else Deno.env.set(BACKEND_VARIABLE, before);
  }
}

/**
 * Deno creates its WebGPU instance at the first adapter request, with the backends
 * DENO_WEBGPU_BACKEND names then; later requests can only choose among those. Called before any
 * other request, this makes the instance hold every backend, so one process can compare them.
 */
export async function openAllBackends(): Promise<void> {
  await requestAdapterOn("", {});
}

function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  return info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(info.description);
}

export async function acquireDevice(opts: AcquireOptions = {}): Promise<AcquiredDevice> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new NoAdapterError("navigator.gpu is missing from this runtime");
  }
  const { adapter, backend } = await chooseAdapter(opts);
  // Deno's WebGPU: adapter info must be read before requestDevice consumes the adapter.
  const info = adapter.info;
  const adapterName = describeAdapter(info, backend);
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
  return {
    device,
    limits,
    adapterName,
    hasTimestamps,
    isSoftware: isSoftwareAdapter(info),
    backend,
  };
}

function describeAdapter(info: GPUAdapterInfo, backend: string): string {
  const parts = [info.description, info.vendor && `vendor ${info.vendor}`].filter(Boolean);
  const name = parts.length ? parts.join(", ") : "unknown adapter";
  const tags = [info.isFallbackAdapter && "software", backend !== "default" && backend]
    .filter(Boolean);
  return tags.length ? `${name} [${tags.join(", ")}]` : name;
}

/** A short file-name-safe slug of the adapter, e.g. "llvmpipe" or "nvidia-h200". */
export function adapterSlug(adapterName: string): string {
  const first = adapterName.split(/[,(\[]/)[0].trim().toLowerCase();
  return first.replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "adapter";
}
