/**
 * A pool of GPU buffers and host scratch arrays, reused across calls: fresh memory is expensive (on
 * lavapipe a new 32 MiB allocation costs ~30 ns/token to touch), so every call borrows and returns.
 *
 * Input buffers are upload-only (`STORAGE | COPY_DST`, only ever written by `queue.writeBuffer`): after a GPU
 * write, Dawn's `writeBuffer` to that buffer falls onto a ~50× slower path (../shared/PERF-NOTES.md), so the
 * pool keys buffers by usage and never hands an input buffer to a kernel as an output.
 *
 * @module
 */

/** `GPUBufferUsage` flags as numbers (Node has no `GPUBufferUsage` global unless `webgpu`'s globals are installed). */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  QUERY_RESOLVE: 0x0200,
} as const;

/** `GPUMapMode` flags as numbers. */
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

/** Round `n` up to a multiple of `m`. */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/** The size class a request of `bytes` is served from: ≤ 12.5 % above the request, at least 256 bytes. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(256, p / 8);
  return roundUp(bytes, step);
}

/** Pooled GPU buffers keyed by (usage, size class), plus pooled host `Float32Array`s. */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly all = new Set<GPUBuffer>();
  private readonly hostFree = new Map<number, Float32Array[]>();
  private destroyed = false;

  /** @param device - the device buffers are created on */
  constructor(private readonly device: GPUDevice) {}

  /** Borrow a buffer with exactly `usage` and at least `bytes` bytes (its `size` may be larger). */
  acquire(usage: number, bytes: number, label = 'lumirag-pool'): GPUBuffer {
    if (this.destroyed) throw new Error('BufferPool: used after destroy()');
    const size = sizeClass(bytes);
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    const hit = list?.pop();
    if (hit) return hit;
    const buf = this.device.createBuffer({ size, usage, label });
    this.all.add(buf);
    return buf;
  }

  /** Return a borrowed buffer. */
  release(buf: GPUBuffer): void {
    if (this.destroyed || !this.all.has(buf)) return;
    const key = `${buf.usage}:${buf.size}`;
    const list = this.free.get(key);
    if (list) list.push(buf);
    else this.free.set(key, [buf]);
  }

  /** Hand a borrowed buffer over to a caller for good: the pool forgets it and will not destroy it. */
  detach(buf: GPUBuffer): void {
    this.all.delete(buf);
  }

  /** Borrow a host scratch array of at least `length` floats (its contents are stale). */
  acquireHost(length: number): Float32Array {
    const size = sizeClass(length * 4) / 4;
    const hit = this.hostFree.get(size)?.pop();
    return hit ?? new Float32Array(size);
  }

  /** Return a host scratch array. */
  releaseHost(a: Float32Array): void {
    const list = this.hostFree.get(a.length);
    if (list) list.push(a);
    else this.hostFree.set(a.length, [a]);
  }

  /** Bytes held by the pool (borrowed and idle). */
  get bytes(): number {
    let s = 0;
    for (const b of this.all) s += b.size;
    return s;
  }

  /** Destroy every idle buffer and forget host scratch, keeping the pool usable. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.all.delete(b);
        b.destroy();
      }
    }
    this.free.clear();
    this.hostFree.clear();
  }

  /** Destroy every buffer the pool created. */
  destroy(): void {
    for (const b of this.all) b.destroy();
    this.all.clear();
    this.free.clear();
    this.hostFree.clear();
    this.destroyed = true;
  }
}
