/**
 * Finding a WebGPU device: `navigator.gpu` in browsers, Dawn (the `webgpu` npm package, imported dynamically
 * so browser bundles never pull it in) in Node.
 *
 * @module
 */
import { GpuUnavailableError } from '../errors.js';

/**
 * Dawn's GPU object. Kept referenced for the life of the process: when it is garbage-collected Dawn tears down
 * and the process segfaults (../shared/PERF-NOTES.md). Devices are released with `destroy()` instead.
 */
let dawnGpu: GPU | null = null;
let dawnError: string | null = null;

/** The `GPU` entry point of this environment, or null with the reason in `why`. */
export async function getGpu(): Promise<{ gpu: GPU | null; why: string }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, why: 'navigator.gpu' };
  if (dawnGpu) return { gpu: dawnGpu, why: 'Dawn (webgpu package)' };
  if (dawnError) return { gpu: null, why: dawnError };
  try {
    const spec = 'webgpu';
    const mod = (await import(/* @vite-ignore */ /* webpackIgnore: true */ spec)) as { create: (flags: string[]) => GPU };
    dawnGpu = mod.create([]);
    return { gpu: dawnGpu, why: 'Dawn (webgpu package)' };
  } catch (err) {
    dawnError = `no navigator.gpu, and the webgpu package could not be loaded: ${(err as Error).message}`;
    return { gpu: null, why: dawnError };
  }
}

/** A device ready for the engine, with what it can do. */
export interface AcquiredDevice {
  /** The device. */
  device: GPUDevice;
  /** Whether the engine created it (and so destroys it on `destroy()`). */
  ownsDevice: boolean;
  /** Whether `subgroups` is enabled on the device (subgroupAdd reductions). */
  subgroups: boolean;
  /** Vendor / architecture / description of the adapter, when known. */
  description: string;
  /** Whether the adapter runs on the CPU (lavapipe, SwiftShader, a fallback adapter). */
  software: boolean;
}

/** Options of {@link acquireDevice}. */
export interface AcquireDeviceOptions {
  /** Use this device instead of requesting one (it is not destroyed by the engine). */
  device?: GPUDevice;
  /** Adapter preference. */
  powerPreference?: GPUPowerPreference;
  /** Do not enable `subgroups` even where the adapter has it (tests the barrier-tree fallback). */
  disableSubgroups?: boolean;
}

function isSoftware(info: GPUAdapterInfo | undefined, fallback: boolean): boolean {
  if (fallback) return true;
  if (!info) return false;
  const text = [info.vendor, info.architecture, info.device, info.description].join(' ');
  return info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader|software rasterizer/i.test(text);
}

function describe(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return parts.length > 0 ? parts.join(' / ') : 'unknown adapter';
}

/**
 * Request an adapter and a device with the limits the kernels want (the adapter's storage binding and buffer
 * sizes; the kernels stay within the default 8 storage buffers per stage), and `subgroups` and `timestamp-query` when
 * present.
 *
 * @throws GpuUnavailableError when there is no WebGPU implementation or no adapter
 */
export async function acquireDevice(opts: AcquireDeviceOptions = {}): Promise<AcquiredDevice> {
  if (opts.device) {
    const d = opts.device;
    const info = (d as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return {
      device: d,
      ownsDevice: false,
      subgroups: !opts.disableSubgroups && d.features.has('subgroups'),
      description: describe(info),
      software: isSoftware(info, false),
    };
  }
  const { gpu, why } = await getGpu();
  if (!gpu) throw new GpuUnavailableError(`WebGPU is not available: ${why}`);
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
  if (!adapter) {
    throw new GpuUnavailableError(
      `WebGPU is not available: ${why} found no adapter (in Node on a machine without a GPU, install Mesa >= 25 lavapipe: libvulkan1 and mesa-vulkan-drivers)`,
    );
  }
  const subgroups = !opts.disableSubgroups && adapter.features.has('subgroups');
  const lim = adapter.limits;
  const features: GPUFeatureName[] = [];
  if (subgroups) features.push('subgroups' as GPUFeatureName);
  if (adapter.features.has('timestamp-query')) features.push('timestamp-query'); // kernel timing (GpuContext.profileStart)
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
    },
  });
  const fallback = (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || (adapter.info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  return { device, ownsDevice: true, subgroups, description: describe(adapter.info), software: isSoftware(adapter.info, fallback) };
}
