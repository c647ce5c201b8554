/**
 * GPU-resident policy loss: a WebGPU training stack whose log-probs already live in GPU buffers passes them
 * as `GPUBuffer`s and gets d loss / d logProbs back as a `GPUBuffer`, with no round trip through JS memory.
 * Only the loss and the metrics (a few floats) come back to the host.
 *
 *   npx tsx examples/gpu-resident.ts
 */
import { BufferUsage, createEngine, MapMode } from '../src/index.js';

const engine = await createEngine({ backend: 'webgpu' });
console.log(`backend: ${engine.backend} (${engine.reason})`);
const gpu = engine.gpu!;
// Share the device with your own kernels: gpu.device (or pass yours: createEngine({ device })).
const device = gpu.device;

// A toy batch: B sequences of T tokens, right-padded. In a real stack these buffers are your model's outputs.
const [B, T] = [4, 1024];
const n = B * T;
const lengths = [1024, 700, 512, 3];
const host = { olp: new Float32Array(n), lp: new Float32Array(n), adv: new Float32Array(n), mask: new Float32Array(n) };
for (let i = 0; i < B; i++) {
  for (let j = 0; j < T; j++) {
    const k = i * T + j;
    host.olp[k] = -1 - 0.5 * Math.sin(k);
    host.lp[k] = host.olp[k]! + 0.1 * Math.cos(3 * k);
    host.adv[k] = i % 2 === 0 ? 1 : -1;
    host.mask[k] = j < lengths[i]! ? 1 : 0;
  }
}
// Buffers need STORAGE usage and a size of 4·B·T rounded up to 16 bytes.
const toGpu = (a: Float32Array): GPUBuffer => {
  const b = device.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
  device.queue.writeBuffer(b, 0, a.buffer, a.byteOffset, a.byteLength);
  return b;
};
const batch = {
  oldLogProbs: toGpu(host.olp),
  logProbs: toGpu(host.lp),
  advantages: toGpu(host.adv),
  responseMask: toGpu(host.mask),
  shape: [B, T] as const,
  rowLengths: lengths, // optional: skips a row-length pass over the GPU mask
};

// The gradient goes into a buffer of yours (or omit gradBuffer and own the one returned).
const gradBuffer = device.createBuffer({ size: n * 4, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
const { loss, metrics } = await engine.policyLossGpu('vanilla', batch, { clipRatioLow: 0.2, clipRatioHigh: 0.28, lossAggMode: 'token-mean' }, { gradBuffer });
console.log('loss', loss, metrics);

// The seed's DAPO mode (eighty-twenty) selects its high-entropy tokens on the GPU too, so the entropies can stay
// there as well (here a made-up per-token entropy).
const entropy = toGpu(Float32Array.from({ length: n }, (_, k) => 2 + Math.sin(0.37 * k)));
const dapo = await engine.policyLossGpu('eighty-twenty', { ...batch, entropy }, { entropyTopRatio: 0.2 }, { gradBuffer });
console.log('eighty-twenty loss', dapo.loss, dapo.metrics);
entropy.destroy();

// Your backward pass would now consume gradBuffer on the GPU. Here we peek at a few values.
const staging = device.createBuffer({ size: 64, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
const enc = device.createCommandEncoder();
enc.copyBufferToBuffer(gradBuffer, 0, staging, 0, 64);
device.queue.submit([enc.finish()]);
await staging.mapAsync(MapMode.READ);
console.log('d loss / d logProbs [0, 0..15]:', Array.from(new Float32Array(staging.getMappedRange())).map((v) => v.toExponential(3)).join(' '));
staging.unmap();

for (const b of [staging, gradBuffer, batch.oldLogProbs, batch.logProbs, batch.advantages, batch.responseMask]) b.destroy();
engine.destroy(); // releases the device so Node exits
