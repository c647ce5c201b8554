/**
 * The WebGPU engine beyond the fixtures: pipeline caching across shapes, chunked dispatches over binding
 * windows, GPU-resident inputs and gradients, the barrier-tree fallback, typed errors, and the embedded shaders.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import {
  acquireDevice,
  BufferUsage,
  createEngine,
  type Engine,
  type EnginePolicyLossBatch,
  GpuDeviceLostError,
  GpuShaderError,
  GpuUnavailableError,
  MapMode,
  policyLoss,
  type PolicyLossConfig,
  ShapeError,
  ValueError,
} from '../src/index.js';
import { expectArrayClose, expectClose, GPU_TOL } from './helpers/fixtures.js';
import { getTestEngine, syntheticBatch } from './helpers/gpu.js';

const { engine, reason } = await getTestEngine();
const reasonText = engine ? 'webgpu' : `skipped: ${reason}`;
afterAll(() => engine?.destroy());

const MODES: [string, PolicyLossConfig][] = [
  ['vanilla', { clipRatioLow: 0.2, clipRatioHigh: 0.28, lossAggMode: 'token-mean' }],
  ['vanilla', { lossAggMode: 'seq-mean-token-mean', globalBatchInfo: { dpSize: 2, globalBatchSize: 40 } }],
  ['vanilla', { lossAggMode: 'seq-mean-token-sum-norm' }],
  ['gspo', { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 }],
  ['sapo', {}],
  ['cispo', { clipRatioLow: 10, clipRatioHigh: 0.2, lossAggMode: 'seq-mean-token-sum' }],
  ['gpg', {}],
  ['clip_cov', { clipCovRatio: 0.01, clipCovLb: 0, clipCovUb: 5 }],
  ['kl_cov', { klCovRatio: 0.01 }],
  ['geo_mean', { clipRatioLow: 0.4, clipRatioHigh: 0.4 }],
  ['eighty-twenty', { entropyTopRatio: 0.2 }],
  ['bypass_mode', { rolloutCorrection: { rolloutIs: 'token', lossType: 'reinforce' } }],
];

function hostBatch(B: number, T: number, seed: number, withW: boolean): EnginePolicyLossBatch {
  const s = syntheticBatch(B, T, seed);
  return { oldLogProbs: s.olp, logProbs: s.lp, advantages: s.adv, responseMask: s.mask, rolloutIsWeights: withW ? s.w : null, entropy: s.ent, shape: [B, T] };
}

function cpuBatch(b: EnginePolicyLossBatch) {
  return b as Parameters<typeof policyLoss>[1];
}

function sameResult(got: { loss: number; grad: ArrayLike<number>; metrics: Record<string, number> }, exp: { loss: number; grad: ArrayLike<number>; metrics: Record<string, number> }, what: string): void {
  let s = 0;
  for (let k = 0; k < exp.grad.length; k++) s += Math.abs(exp.grad[k] as number) / exp.grad.length;
  expectClose(got.loss, exp.loss, GPU_TOL, Math.max(s * exp.grad.length, 1e-3), `${what} loss`);
  expect(Object.keys(got.metrics).sort()).toEqual(Object.keys(exp.metrics).sort());
  for (const [k, v] of Object.entries(exp.metrics)) expectClose(got.metrics[k]!, v, GPU_TOL, 1, `${what} ${k}`);
  expectArrayClose(got.grad, exp.grad, GPU_TOL, `${what} grad`);
}

describe.skipIf(!engine)(`WebGPU engine (${reasonText})`, () => {
  const e = engine as Engine;

  it('reports its backend and why', () => {
    expect(e.backend).toBe('webgpu');
    expect(e.reason).toMatch(/WebGPU adapter/);
    expect(e.gpu).not.toBeNull();
  });

  it('agrees with the CPU reference on synthetic batches, every mode, with IS weights', async () => {
    const b = hostBatch(13, 77, 3, true);
    for (const [mode, cfg] of MODES) {
      const g = await e.policyLoss(mode, b, cfg);
      const c = policyLoss(mode, cpuBatch(b), cfg);
      sameResult(g, c, mode);
    }
  });

  it('compiles each pipeline once: new shapes and constants add none', async () => {
    const cfg: PolicyLossConfig = { lossAggMode: 'seq-mean-token-mean' };
    await e.policyLoss('vanilla', hostBatch(2, 3, 1, false), cfg);
    await e.policyLoss('gspo', hostBatch(2, 3, 1, false), {});
    const before = e.gpu!.pipelines.size;
    for (const [B, T] of [[1, 1], [5, 129], [64, 1000], [3, 4097]] as const) {
      await e.policyLoss('vanilla', hostBatch(B, T, B + T, false), { ...cfg, clipRatioHigh: 0.1 * (B % 3) + 0.1, clipRatioC: 2 + B });
      await e.policyLoss('gspo', hostBatch(B, T, B * T, false), { clipRatioLow: 1e-3 * B });
    }
    expect(e.gpu!.pipelines.size).toBe(before);
  });

  it('reuses pooled buffers across calls', async () => {
    const b = hostBatch(32, 500, 9, false);
    await e.policyLoss('vanilla', b);
    const bytes = e.gpu!.pool.bytes;
    for (let i = 0; i < 3; i++) await e.policyLoss('vanilla', b);
    expect(e.gpu!.pool.bytes).toBe(bytes);
  });

  it('GpuContext.wait passes results and rejections through and lets the event loop turn while it blocks', async () => {
    const ctx = e.gpu!;
    await expect(ctx.wait(Promise.resolve(7), 1 << 20)).resolves.toBe(7);
    await expect(ctx.wait(Promise.reject(new Error('boom')), 1 << 20)).rejects.toThrow('boom');
    let ticks = 0;
    const iv = setInterval(() => ticks++, 1);
    await ctx.wait(new Promise((r) => setTimeout(r, 40)), 1 << 20);
    clearInterval(iv);
    expect(ticks).toBeGreaterThan(3);
  });

  it('eighty-twenty selects on the GPU (one band pass from a host sample, or the radix select; lowest-index ties) exactly as the CPU reference', async () => {
    const rnd = ((): (() => number) => {
      let x = 7;
      return () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
    })();
    const withEntropy = (B: number, T: number, seed: number, gen: (k: number) => number): EnginePolicyLossBatch => {
      const b = hostBatch(B, T, seed, false);
      const ent = new Float32Array(B * T);
      for (let k = 0; k < ent.length; k++) ent[k] = gen(k);
      return { ...b, rolloutIsWeights: null, entropy: ent };
    };
    const cases: [string, EnginePolicyLossBatch, PolicyLossConfig][] = [
      ['continuous', withEntropy(9, 203, 31, () => rnd() * 5), { entropyTopRatio: 0.2 }],
      ['quantised (many ties at the cut)', withEntropy(9, 203, 32, () => Math.floor(rnd() * 6) / 2), { entropyTopRatio: 0.3 }],
      ['all equal', withEntropy(5, 64, 33, () => 1.5), { entropyTopRatio: 0.2 }],
      ['signs and zeros', withEntropy(6, 50, 34, (k) => [-0, 0, -2.5, 1e-30, -1e-30, 3e30][k % 6] as number), { entropyTopRatio: 0.45 }],
      ['ratio 1 (every valid token)', withEntropy(4, 40, 35, () => rnd()), { entropyTopRatio: 1 }],
      ['sum-norm, dp', withEntropy(7, 90, 36, () => Math.floor(rnd() * 4)), { entropyTopRatio: 0.2, lossAggMode: 'seq-mean-token-sum-norm' }],
      ['token-mean, dpSize + batchNumTokens', withEntropy(7, 90, 37, () => rnd()), { entropyTopRatio: 0.25, globalBatchInfo: { dpSize: 4, batchNumTokens: 300 } }],
      ['several workgroups', withEntropy(64, 2048, 38, () => Math.floor(rnd() * 50) / 7), { entropyTopRatio: 0.2 }],
      // above the host sample's size (the band pass brackets the cut from a sample of positions)
      ['sampled, continuous', withEntropy(64, 1024, 42, () => rnd() * 5), { entropyTopRatio: 0.2 }],
      ['sampled, ties at the cut inside the band', withEntropy(64, 1024, 43, () => Math.floor(rnd() * 3000) / 100), { entropyTopRatio: 0.2 }],
      // entropies rising with the index: the whole band falls in one or two workgroups, more than their workgroup
      // memory holds, so the rest of it goes straight to the output buffer
      ['sampled, the band in one workgroup', withEntropy(256, 1024, 45, (k) => k / 1000), { entropyTopRatio: 0.2 }],
      // the cut inside a tie group too large for the band's buffer: the radix select instead
      ['sampled, a huge tie group at the cut', withEntropy(64, 1024, 44, () => (rnd() < 0.6 ? 2 : rnd() * 4)), { entropyTopRatio: 0.3 }],
    ];
    // which path selected: the one-pass band (host entropies) or the radix select
    const internals = e as unknown as { selectTopKBand: (...a: unknown[]) => Promise<unknown> };
    const band = internals.selectTopKBand.bind(e);
    const paths: string[] = [];
    internals.selectTopKBand = async (...a: unknown[]) => {
      const r = await band(...a);
      paths.push(r ? 'band' : 'radix');
      return r;
    };
    const dev = e.gpu!.device;
    const put = (a: Float32Array): GPUBuffer => {
      const buf = dev.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
      dev.queue.writeBuffer(buf, 0, a.buffer, a.byteOffset, a.byteLength);
      return buf;
    };
    try {
      for (const [what, batch, cfg] of cases) {
        const ref = policyLoss('eighty-twenty', cpuBatch(batch), cfg);
        sameResult(await e.policyLoss('eighty-twenty', batch, cfg), ref, `eighty-twenty ${what}`);
        // the same with the entropies on the GPU (the band's sample drawn on the GPU)
        const ent = put(batch.entropy as Float32Array);
        sameResult(await e.policyLoss('eighty-twenty', { ...batch, entropy: ent }, cfg), ref, `eighty-twenty ${what}, GPU-resident entropy`);
        ent.destroy();
      }
    } finally {
      internals.selectTopKBand = band;
    }
    // each case twice (host, then GPU-resident entropies: sampled on the GPU); small samples (< 256 valid entropies)
    // and a band that outgrows its buffer take the radix select
    const twice = (xs: string[]): string[] => xs.flatMap((x) => [x, x]);
    expect(paths).toEqual(twice(['band', 'band', 'radix', 'radix', 'radix', 'band', 'radix', 'band', 'band', 'band', 'band', 'radix']));
    // a mask that is not 0/1 is caught by the band pass (the token pass then skips its own check), host or resident
    for (const badValue of [0.5, 2, Number.POSITIVE_INFINITY, Number.NaN]) {
      const bb = cases[0]![1];
      const badMask = Float32Array.from(bb.responseMask as Float32Array);
      badMask[7] = badValue;
      await expect(e.policyLoss('eighty-twenty', { ...bb, responseMask: badMask }, {})).rejects.toThrow(/responseMask: a mask must be 0\/1, got/);
      const [mb, eb] = [put(badMask), put(bb.entropy as Float32Array)];
      await expect(e.policyLoss('eighty-twenty', { ...bb, responseMask: mb, entropy: eb }, {})).rejects.toThrow(/responseMask: a mask must be 0\/1/);
      mb.destroy();
      eb.destroy();
    }
    // no valid token, and a single one
    const none = withEntropy(3, 8, 39, () => 1);
    (none.responseMask as Float32Array).fill(0);
    sameResult(await e.policyLoss('eighty-twenty', none, {}), policyLoss('eighty-twenty', cpuBatch(none), {}), 'eighty-twenty none valid');
    const single = withEntropy(3, 8, 40, () => 1);
    (single.responseMask as Float32Array).fill(0);
    (single.responseMask as Float32Array)[13] = 1;
    sameResult(await e.policyLoss('eighty-twenty', single, {}), policyLoss('eighty-twenty', cpuBatch(single), {}), 'eighty-twenty one valid');
    // a non-finite entropy at a valid position: the reference's error (host), a typed one (GPU-resident)
    const bad = withEntropy(4, 30, 41, () => 1);
    const at = (bad.responseMask as Float32Array).indexOf(1);
    (bad.entropy as Float32Array)[at] = Number.POSITIVE_INFINITY;
    const refErr = (() => {
      try {
        policyLoss('eighty-twenty', cpuBatch(bad), {});
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected an error');
    })();
    await expect(e.policyLoss('eighty-twenty', bad, {})).rejects.toThrow(refErr.message);
    // GPU-resident inputs, entropy included (the selection needs no host array any more)
    const hb = cases[1]![1];
    const bufs = [hb.oldLogProbs, hb.logProbs, hb.advantages, hb.responseMask, hb.entropy].map((a) => put(a as Float32Array));
    const rb: EnginePolicyLossBatch = { oldLogProbs: bufs[0]!, logProbs: bufs[1]!, advantages: bufs[2]!, responseMask: bufs[3]!, entropy: bufs[4]!, shape: hb.shape };
    const r = await e.policyLossGpu('eighty-twenty', rb, { entropyTopRatio: 0.3 });
    const staging = dev.createBuffer({ size: r.gradBuffer.size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(r.gradBuffer, 0, staging, 0, staging.size);
    dev.queue.submit([enc.finish()]);
    await staging.mapAsync(MapMode.READ);
    const grad = new Float32Array(staging.getMappedRange().slice(0, (hb.responseMask as Float32Array).byteLength));
    staging.unmap();
    sameResult({ ...r, grad }, policyLoss('eighty-twenty', cpuBatch(hb), { entropyTopRatio: 0.3 }), 'eighty-twenty resident');
    for (const x of [...bufs, staging, r.gradBuffer]) x.destroy();
  });

  it('writes into gradInto when given', async () => {
    const b = hostBatch(4, 9, 2, false);
    const into = new Float32Array(36).fill(7);
    const r = await e.policyLoss('vanilla', b, {}, { gradInto: into });
    expect(r.grad).toBe(into);
    const c = policyLoss('vanilla', cpuBatch(b));
    expectArrayClose(into, c.grad, GPU_TOL, 'grad');
  });

  it('GPU-resident: GPUBuffer inputs (mask too) and the gradient as a GPUBuffer', async () => {
    const [B, T] = [9, 203];
    const s = syntheticBatch(B, T, 21);
    const dev = e.gpu!.device;
    const put = (a: Float32Array): GPUBuffer => {
      const buf = dev.createBuffer({ size: Math.ceil((a.byteLength) / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
      dev.queue.writeBuffer(buf, 0, a.buffer, a.byteOffset, a.byteLength);
      return buf;
    };
    const bufs = [put(s.olp), put(s.lp), put(s.adv), put(s.mask)] as const;
    const batch: EnginePolicyLossBatch = { oldLogProbs: bufs[0], logProbs: bufs[1], advantages: bufs[2], responseMask: bufs[3], shape: [B, T] };
    // token-mean without rowLengths: N is counted on the GPU (maskcount.wgsl), also after gspo's rows and with dpSize
    const residentModes: [string, PolicyLossConfig][] = [
      ['vanilla', { lossAggMode: 'seq-mean-token-mean' }],
      ['vanilla', { lossAggMode: 'token-mean', globalBatchInfo: { dpSize: 2 } }],
      ['gspo', {}],
      ['gspo', { lossAggMode: 'token-mean' }],
      ['geo_mean', {}],
    ];
    for (const [mode, cfg] of residentModes) {
      const r = await e.policyLossGpu(mode, batch, cfg);
      expect(r.gradBuffer.size).toBeGreaterThanOrEqual(B * T * 4);
      const staging = dev.createBuffer({ size: Math.ceil((B * T * 4) / 16) * 16, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
      const enc = dev.createCommandEncoder();
      enc.copyBufferToBuffer(r.gradBuffer, 0, staging, 0, staging.size);
      dev.queue.submit([enc.finish()]);
      await staging.mapAsync(MapMode.READ);
      const grad = new Float32Array(staging.getMappedRange().slice(0, B * T * 4));
      staging.unmap();
      staging.destroy();
      r.gradBuffer.destroy();
      const c = policyLoss(mode, { oldLogProbs: s.olp, logProbs: s.lp, advantages: s.adv, responseMask: s.mask, shape: [B, T] }, cfg);
      sameResult({ ...r, grad }, c, `resident ${mode}`);
    }
    // the caller's own gradient buffer
    const mine = dev.createBuffer({ size: Math.ceil((B * T * 4) / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
    const r2 = await e.policyLossGpu('vanilla', batch, {}, { gradBuffer: mine });
    expect(r2.gradBuffer).toBe(mine);
    mine.destroy();
    const a = await e.aggLossGpu(bufs[1], bufs[3], 'seq-mean-token-mean', {}, [B, T]);
    const ca = await (await createEngine({ backend: 'cpu' })).aggLoss(s.lp, s.mask, 'seq-mean-token-mean', {}, [B, T]);
    expectClose(a.loss, ca.loss, GPU_TOL, 1, 'aggLossGpu loss');
    a.gradBuffer.destroy();
    await expect(e.policyLossGpu('clip_cov', batch, {})).rejects.toThrow(/host array/);
    // a GPU-resident mask that is not 0/1 is caught by the kernel's own check
    const bad = new Float32Array(s.mask);
    bad[5] = 0.5;
    const badBuf = put(bad);
    await expect(e.policyLoss('vanilla', { ...batch, responseMask: badBuf })).rejects.toThrow(/responseMask: a mask must be 0\/1/);
    badBuf.destroy();
    for (const b of bufs) b.destroy();
  });

  it('edge shapes: an all-masked batch, a 1×1 batch and an empty batch agree with the CPU reference', async () => {
    const allMasked = hostBatch(3, 5, 12, true);
    (allMasked.responseMask as Float32Array).fill(0);
    const one = hostBatch(1, 1, 13, true);
    (one.responseMask as Float32Array).fill(1);
    const empty: EnginePolicyLossBatch = { oldLogProbs: [], logProbs: [], advantages: [], responseMask: [] };
    for (const b of [allMasked, one, empty]) {
      for (const [mode, cfg] of MODES.filter(([m]) => m !== 'eighty-twenty' || b !== empty)) {
        const c = policyLoss(mode, cpuBatch(b), cfg);
        sameResult(await e.policyLoss(mode, b, cfg), c, `edge ${mode}`);
      }
    }
  });

  it('a mask entry that is not 0/1 is an error on every path: NaN, ±inf, 2, 0.5, subnormal, 1 + ulp', async () => {
    const b = hostBatch(24, 50, 6, false);
    const dev = e.gpu!.device;
    const put = (a: Float32Array): GPUBuffer => {
      const buf = dev.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
      dev.queue.writeBuffer(buf, 0, a.buffer, a.byteOffset, a.byteLength);
      return buf;
    };
    const lengths = Array.from({ length: 24 }, () => 50);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2, 0.5, 1e-40, 1.0000001]) {
      const m = Float32Array.from(b.responseMask as Float32Array);
      m[37] = bad;
      const hb = { ...b, responseMask: m };
      const mb = put(m);
      const rb = { ...b, responseMask: mb };
      const paths: [string, string, EnginePolicyLossBatch, PolicyLossConfig][] = [
        ['token-mean (maskcount.wgsl)', 'vanilla', hb, {}],
        ['token-mean, GPU-resident mask', 'vanilla', rb, {}],
        ['GPU-resident mask with rowLengths (the token pass checks)', 'vanilla', { ...rb, rowLengths: lengths }, {}],
        ['seq-mean (the host scan)', 'vanilla', hb, { lossAggMode: 'seq-mean-token-mean' }],
        ['eighty-twenty (the band pass)', 'eighty-twenty', hb, {}],
        ['eighty-twenty, GPU-resident mask', 'eighty-twenty', rb, {}],
      ];
      for (const [what, mode, batch, cfg] of paths) {
        await expect(e.policyLoss(mode, batch, cfg), `${bad}: ${what}`).rejects.toThrow(/responseMask: a mask must be 0\/1/);
      }
      // aggLoss: a host mask is scanned, a GPU-resident one checked by the token pass
      await expect(e.aggLoss(b.logProbs as Float32Array, m, 'token-mean', {}, [24, 50]), `${bad}: aggLoss`).rejects.toThrow(/mask: a mask must be 0\/1/);
      await expect(e.aggLoss(b.logProbs as Float32Array, mb, 'seq-mean-token-mean', {}, [24, 50]), `${bad}: aggLoss, GPU-resident mask`).rejects.toThrow(/mask: a mask must be 0\/1/);
      mb.destroy();
    }
  });

  it('input validation: shapes, 0/1 masks, non-finite values at valid positions', async () => {
    const b = hostBatch(3, 8, 5, false);
    await expect(e.policyLoss('vanilla', { ...b, logProbs: new Float32Array(23) })).rejects.toBeInstanceOf(ShapeError);
    const badMask = new Float32Array(b.responseMask as Float32Array);
    badMask[4] = 0.5;
    await expect(e.policyLoss('vanilla', { ...b, responseMask: badMask })).rejects.toBeInstanceOf(ValueError);
    const lp = new Float32Array(b.logProbs as Float32Array);
    const m = b.responseMask as Float32Array;
    const k = m.findIndex((v) => v === 1);
    lp[k] = Number.NaN;
    await expect(e.policyLoss('vanilla', { ...b, logProbs: lp })).rejects.toThrow(/logProbs: non-finite value NaN/);
    const j = m.findIndex((v) => v === 0);
    lp[k] = -1;
    lp[j] = Number.NaN; // garbage at a masked position is ignored, as in verl
    const r = await e.policyLoss('vanilla', { ...b, logProbs: lp });
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(r.grad[j]).toBe(0);
  });
});

describe.skipIf(!engine)(`chunked dispatches over small binding windows (${reasonText})`, () => {
  it('give the same results as one binding, for every mode (token and row passes)', async () => {
    const small = await createEngine({ backend: 'webgpu', maxBindingBytes: 16384 });
    try {
      const b = hostBatch(37, 333, 17, true); // 12321 tokens: 4 token windows, 12-row windows at unaligned offsets
      for (const [mode, cfg] of MODES) {
        const g = await small.policyLoss(mode, b, cfg);
        const c = policyLoss(mode, cpuBatch(b), cfg);
        sameResult(g, c, `chunked ${mode}`);
      }
      // eighty-twenty without IS weights selects on the GPU: its histogram and tie passes span the windows too
      const nw = { ...b, rolloutIsWeights: null };
      for (const cfg of [{ entropyTopRatio: 0.2 }, { entropyTopRatio: 0.35, lossAggMode: 'seq-mean-token-sum-norm' as const }]) {
        sameResult(await small.policyLoss('eighty-twenty', nw, cfg), policyLoss('eighty-twenty', cpuBatch(nw), cfg), 'chunked eighty-twenty (GPU selection)');
      }
      // more ties at the cut than one (small) binding holds: the lowest-index ties by a radix select over indices
      const tied = { ...nw, entropy: new Float32Array(37 * 333).fill(1.5) };
      sameResult(await small.policyLoss('eighty-twenty', tied, { entropyTopRatio: 0.2 }), policyLoss('eighty-twenty', cpuBatch(tied), { entropyTopRatio: 0.2 }), 'chunked eighty-twenty, all tied');
      const ga = await small.aggLoss(b.logProbs, b.responseMask, 'seq-mean-token-mean', {}, [37, 333]);
      const ca = await (await createEngine({ backend: 'cpu' })).aggLoss(b.logProbs as Float32Array, b.responseMask as Float32Array, 'seq-mean-token-mean', {}, [37, 333]);
      expectClose(ga.loss, ca.loss, GPU_TOL, 1, 'agg loss');
      expectArrayClose(ga.grad, ca.grad, GPU_TOL, 'agg grad');
    } finally {
      small.destroy();
    }
  });
});

describe.skipIf(!engine)(`streamed uploads and read-backs (${reasonText})`, () => {
  it('give bit-identical results to one upload, for every mode, host and GPU-buffer gradients', async () => {
    // 256 tokens per workgroup and per piece: 12321 tokens stream as 49 pieces
    const streamed = await createEngine({ backend: 'webgpu', vec4PerInvocation: 1, streamPieceTokens: 1 });
    const whole = await createEngine({ backend: 'webgpu', vec4PerInvocation: 1, streamPieceTokens: 0 });
    const windowed = await createEngine({ backend: 'webgpu', vec4PerInvocation: 1, streamPieceTokens: 3000, maxBindingBytes: 16384 });
    try {
      const gpu = streamed.gpu!;
      const start = gpu.readbackStart.bind(gpu);
      let starts = 0;
      gpu.readbackStart = (...a: Parameters<typeof start>) => {
        starts++;
        return start(...a);
      };
      const b = hostBatch(37, 333, 17, true);
      const nw = { ...b, rolloutIsWeights: null };
      for (const [mode, cfg] of [...MODES, ['eighty-twenty', { entropyTopRatio: 0.2 }] as [string, PolicyLossConfig]]) {
        for (const batch of [b, nw]) {
          starts = 0;
          const into = new Float32Array(37 * 333 + 5).fill(7);
          const s = await streamed.policyLoss(mode, batch, cfg, { gradInto: into });
          const w = await whole.policyLoss(mode, batch, cfg);
          expect(s.loss, mode).toBe(w.loss);
          expect(s.metrics, mode).toEqual(w.metrics);
          expect(s.grad).toBe(into);
          expect(Array.from(into.subarray(0, 37 * 333)), mode).toEqual(Array.from(w.grad));
          expect(into[37 * 333], 'gradInto past n untouched').toBe(7);
          sameResult({ ...s, grad: into.subarray(0, 37 * 333) }, policyLoss(mode, cpuBatch(batch), cfg), `streamed ${mode}`);
          sameResult(await windowed.policyLoss(mode, batch, cfg), policyLoss(mode, cpuBatch(batch), cfg), `streamed in windows ${mode}`);
          // streamed wherever the token pass reads host inputs straight away (not after gspo / geo_mean's row pass)
          if (mode !== 'gspo' && mode !== 'geo_mean' && mode !== 'bypass_mode') expect(starts, mode).toBeGreaterThan(40);
        }
      }
      // a GPU-buffer gradient from host inputs: streamed uploads, no piece read-backs
      const g = await streamed.policyLossGpu('vanilla', b, MODES[0]![1]);
      const stage = streamed.gpu!.device.createBuffer({ size: g.gradBuffer.size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
      const enc = streamed.gpu!.device.createCommandEncoder();
      enc.copyBufferToBuffer(g.gradBuffer, 0, stage, 0, g.gradBuffer.size);
      streamed.gpu!.device.queue.submit([enc.finish()]);
      await stage.mapAsync(MapMode.READ);
      const got = new Float32Array(stage.getMappedRange().slice(0, 37 * 333 * 4));
      stage.destroy();
      g.gradBuffer.destroy();
      expect(Array.from(got)).toEqual(Array.from((await whole.policyLoss('vanilla', b, MODES[0]![1])).grad));
      // a non-finite input in a late piece is still reported, and the engine keeps working
      const lp = Float32Array.from(b.logProbs as Float32Array);
      const m = b.responseMask as Float32Array;
      let k = m.length - 1;
      while (m[k] !== 1) k--;
      lp[k] = Number.POSITIVE_INFINITY;
      await expect(streamed.policyLoss('vanilla', { ...b, logProbs: lp })).rejects.toThrow(/logProbs: non-finite value Infinity/);
      expect((await streamed.policyLoss('vanilla', b)).loss).toBe((await whole.policyLoss('vanilla', b)).loss);
    } finally {
      streamed.destroy();
      whole.destroy();
      windowed.destroy();
    }
  });

  it('rejects a bad streamPieceTokens', async () => {
    await expect(createEngine({ backend: 'webgpu', streamPieceTokens: -1 })).rejects.toThrow(/streamPieceTokens must be an integer >= 0/);
    await expect(createEngine({ backend: 'cpu', streamPieceTokens: 1.5 })).rejects.toThrow(/streamPieceTokens/);
  });
});

describe.skipIf(!engine)(`kernel timing (${reasonText})`, () => {
  it('times kernels with timestamp queries (GpuContext.profileStart / profileStop)', async () => {
    const gpu = (engine as Engine).gpu!;
    if (!gpu.canProfile) {
      expect(() => gpu.profileStart()).toThrow(/timestamp-query/);
      return;
    }
    await expect(gpu.profileStop()).rejects.toThrow(/without profileStart/);
    gpu.profileStart(2);
    const b = hostBatch(37, 333, 17, false);
    await (engine as Engine).policyLoss('vanilla', b, MODES[0]![1]); // the count pass and the token pass
    await (engine as Engine).policyLoss('sapo', b, {}); // one more pass than the two timed
    const p = await gpu.profileStop();
    expect(p.passes).toBe(2);
    expect(p.untimed).toBeGreaterThanOrEqual(1);
    expect(p.ns).toBeGreaterThan(0);
    expect(p.perPass).toHaveLength(2);
    expect(p.perPass.every((x) => x >= 0)).toBe(true);
    expect(p.perPass[0]! + p.perPass[1]!).toBe(p.ns);
    // not profiling any more: calls run as before
    sameResult(await (engine as Engine).policyLoss('vanilla', b, MODES[0]![1]), policyLoss('vanilla', cpuBatch(b), MODES[0]![1]), 'after profiling');
  });
});

describe.skipIf(!engine)(`barrier-tree reductions without subgroups (${reasonText})`, () => {
  it('agree with the CPU reference', async () => {
    // barrierFree: false, so the token and row passes reduce each workgroup too (on a software adapter they would
    // not); and barrierFree: true, where the token pass needs no reduction and only the other kernels use the tree
    for (const barrierFree of [false, true]) {
      const tree = await createEngine({ backend: 'webgpu', disableSubgroups: true, barrierFree });
      try {
        expect(tree.reason).toMatch(/barrier-tree/);
        expect(tree.gpu!.slotsPerWorkgroup).toBe(barrierFree ? 64 : 1);
        const b = hostBatch(11, 391, 4, true);
        for (const [mode, cfg] of MODES) sameResult(await tree.policyLoss(mode, b, cfg), policyLoss(mode, cpuBatch(b), cfg), `tree ${mode}, barrierFree ${barrierFree}`);
      } finally {
        tree.destroy();
      }
    }
  });
});

describe.skipIf(!engine)(`workgroup-reduced or barrier-free kernels (${reasonText})`, () => {
  it('agree with the CPU reference either way, and both find a mask entry that is not 0/1', async () => {
    const wg = await createEngine({ backend: 'webgpu', barrierFree: false });
    const lane = await createEngine({ backend: 'webgpu', barrierFree: true, maxBindingBytes: 16384 });
    try {
      expect(wg.gpu!.slotsPerWorkgroup).toBe(1);
      expect(lane.gpu!.slotsPerWorkgroup).toBe(64);
      const b = hostBatch(37, 333, 17, true); // over several binding windows for `lane`
      for (const e of [wg, lane]) {
        for (const [mode, cfg] of MODES) sameResult(await e.policyLoss(mode, b, cfg), policyLoss(mode, cpuBatch(b), cfg), `slots ${e.gpu!.slotsPerWorkgroup} ${mode}`);
        // a GPU-resident mask with rowLengths: the token pass checks the mask itself
        const dev = e.gpu!.device;
        const up = (a: Float32Array): GPUBuffer => {
          const x = dev.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
          dev.queue.writeBuffer(x, 0, Float32Array.from(a));
          return x;
        };
        const mask = Float32Array.from(b.responseMask as Float32Array);
        const lengths = Array.from({ length: 37 }, (_, i) => mask.subarray(i * 333, (i + 1) * 333).reduce((s, v) => s + v, 0));
        const ins = { oldLogProbs: up(b.oldLogProbs as Float32Array), logProbs: up(b.logProbs as Float32Array), advantages: up(b.advantages as Float32Array), shape: [37, 333] as const, rowLengths: lengths };
        const ok = await e.policyLossGpu('vanilla', { ...ins, responseMask: up(mask) }, MODES[0]![1]);
        expectClose(ok.loss, policyLoss('vanilla', cpuBatch({ ...b, rolloutIsWeights: null }), MODES[0]![1]).loss, GPU_TOL, 1, `resident slots ${e.gpu!.slotsPerWorkgroup}`);
        ok.gradBuffer.destroy();
        for (const bad of [Number.NaN, 2, 0.5, 1e-40]) {
          const m = Float32Array.from(mask);
          m[5000] = bad;
          await expect(e.policyLossGpu('vanilla', { ...ins, responseMask: up(m) }, MODES[0]![1]), `${bad}`).rejects.toThrow(/0\/1/);
        }
        // the row pass on GPU-resident inputs (T = 333: rows start mid-vec4; `lane` also over 12-row binding windows):
        // gspo's sequence log-ratio, geo_mean with and without IS weights, and a resident mask's row lengths
        const resident = { oldLogProbs: ins.oldLogProbs, logProbs: ins.logProbs, advantages: ins.advantages, responseMask: up(mask), shape: [37, 333] as const };
        const w = up(b.rolloutIsWeights as Float32Array);
        const rowCases: [string, PolicyLossConfig, boolean][] = [
          ['gspo', { clipRatioLow: 3e-4, clipRatioHigh: 4e-4 }, false],
          ['geo_mean', { clipRatioLow: 0.4, clipRatioHigh: 0.4 }, false],
          ['geo_mean', { clipRatioLow: 0.4, clipRatioHigh: 0.4 }, true],
          ['vanilla', { lossAggMode: 'seq-mean-token-mean' }, false],
        ];
        for (const [mode, cfg, withW] of rowCases) {
          const g = await e.policyLoss(mode, { ...resident, rolloutIsWeights: withW ? w : null }, cfg);
          sameResult(g, policyLoss(mode, cpuBatch({ ...b, rolloutIsWeights: withW ? b.rolloutIsWeights : null }), cfg), `row pass, barrierFree ${e.gpu!.barrierFree}, ${mode}${withW ? ' + IS weights' : ''}`);
        }
      }
    } finally {
      wg.destroy();
      lane.destroy();
    }
  });
});

describe.skipIf(!engine)(`typed GPU errors (${reasonText})`, () => {
  it('a WGSL compile error surfaces as E_GPU_SHADER with the compiler message', async () => {
    const e = engine as Engine;
    const err = await e.gpu!.pipeline('broken', 'fn main() { let x: f32 = ; }').catch((x: unknown) => x);
    expect(err).toBeInstanceOf(GpuShaderError);
    expect((err as GpuShaderError).code).toBe('E_GPU_SHADER');
    expect((err as GpuShaderError).message).toMatch(/broken:1:26: missing initializer/);
  });

  it('device loss is reported as E_GPU_DEVICE_LOST, and a new engine works', async () => {
    const acquired = await acquireDevice();
    const shared = await createEngine({ backend: 'webgpu', device: acquired.device });
    const b = hostBatch(2, 5, 1, false);
    await shared.policyLoss('vanilla', b);
    acquired.device.destroy();
    await acquired.device.lost;
    const err = await shared.policyLoss('vanilla', b).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(GpuDeviceLostError);
    expect((err as GpuDeviceLostError).code).toBe('E_GPU_DEVICE_LOST');
    shared.destroy();
    const fresh = await createEngine({ backend: 'webgpu' });
    expect((await fresh.policyLoss('vanilla', b)).loss).toBeCloseTo(policyLoss('vanilla', cpuBatch(b)).loss, 5);
    fresh.destroy();
    const dead = await createEngine({ backend: 'webgpu' });
    dead.destroy();
    await expect(dead.policyLoss('vanilla', b)).rejects.toBeInstanceOf(GpuDeviceLostError);
  });
});

describe.skipIf(!engine)(`process lifetime (${reasonText})`, () => {
  it('examples/gpu-resident.ts runs and its process exits after engine.destroy()', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/gpu-resident.ts'], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toMatch(/^backend: webgpu/m);
    expect(out).toMatch(/loss -?\d/);
  });
});

describe('backend selection', () => {
  it("no adapter: 'webgpu' throws E_GPU_UNAVAILABLE, 'auto' falls back to the CPU and says why", async () => {
    const desc = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: { requestAdapter: async () => null } }, configurable: true, writable: true });
    try {
      const err = await createEngine({ backend: 'webgpu' }).catch((x: unknown) => x);
      expect(err).toBeInstanceOf(GpuUnavailableError);
      expect((err as GpuUnavailableError).code).toBe('E_GPU_UNAVAILABLE');
      const auto = await createEngine({ backend: 'auto' });
      expect(auto.backend).toBe('cpu');
      expect(auto.reason).toMatch(/^auto: WebGPU is not available/);
      expect(auto.gpu).toBeNull();
    } finally {
      if (desc) Object.defineProperty(globalThis, 'navigator', desc);
      else delete (globalThis as { navigator?: unknown }).navigator;
    }
  });

  it('cpu: the reference, Float64 gradients, no GPU-resident calls', async () => {
    const cpu = await createEngine({ backend: 'cpu' });
    const b = hostBatch(3, 4, 8, false);
    const r = await cpu.policyLoss('vanilla', b);
    expect(r.grad).toBeInstanceOf(Float64Array);
    expect(r.loss).toBe(policyLoss('vanilla', cpuBatch(b)).loss);
    await expect(cpu.policyLossGpu('vanilla', b)).rejects.toThrow(/webgpu backend/);
    await expect(createEngine({ backend: 'metal' as 'cpu' })).rejects.toThrow(/backend must be/);
  });

  it('the embedded shader sources are up to date with shaders/*.wgsl', () => {
    expect(() => execFileSync(process.execPath, ['scripts/embed-shaders.mjs', '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
