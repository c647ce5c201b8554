/**
 * Group-mean advantages on WebGPU (shaders/grpo_normalize.wgsl): every grpo, grpo_vectorized, rloo,
 * rloo_vectorized and gpg case of advantages.json at the float32 rule (GPU_TOL), a large interleaved batch against the float64 reference, and
 * the CPU fallbacks. Without an adapter the suite is skipped with the reason (LUMIRAG_REQUIRE_GPU=1 fails instead).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { computeAdvantage, computeAdvantageGpu } from '../src/index.js';
import { expectArrayClose, flat, GPU_TOL, loadFixture } from './helpers/fixtures.js';
import { getTestEngine, rng } from './helpers/gpu.js';

interface AdvCase {
  id: string;
  input_id: string;
  estimator: string;
  kwargs: Record<string, number | boolean>;
  expected?: { advantages: number[][]; returns: number[][] };
}
interface AdvInput {
  token_level_rewards: number[][];
  response_mask: number[][];
  index: string[];
}
const fx = loadFixture<{ inputs: Record<string, AdvInput>; cases: AdvCase[] }>('advantages.json');
const { engine, reason } = await getTestEngine();

describe.skipIf(!engine)(`advantages on WebGPU (${reason})`, () => {
  afterAll(() => engine?.destroy());
  const kernelEstimators = ['grpo', 'grpo_vectorized', 'rloo', 'rloo_vectorized', 'gpg'];
  const cases = fx.cases.filter((c) => kernelEstimators.includes(c.estimator));
  it('has the 70 cases of the estimators with a kernel', () => expect(cases.length).toBe(70));
  for (const c of cases) {
    it(c.id, async () => {
      const inp = fx.inputs[c.input_id] as AdvInput;
      const r = await computeAdvantageGpu(
        engine!,
        c.estimator,
        { tokenLevelRewards: inp.token_level_rewards, responseMask: inp.response_mask, index: inp.index },
        {
          epsilon: c.kwargs.epsilon as number,
          normAdvByStdInGrpo: c.kwargs.norm_adv_by_std_in_grpo as boolean | undefined,
          fNorm: c.kwargs.f_norm as number | undefined,
        },
      );
      expect(r.backend).toBe('webgpu');
      const exp = c.expected as NonNullable<AdvCase['expected']>;
      expectArrayClose(r.advantages, flat(exp.advantages), GPU_TOL, `${c.id} advantages`);
      expectArrayClose(r.returns, flat(exp.returns), GPU_TOL, `${c.id} returns`);
    });
  }

  for (const estimator of ['grpo', 'grpo_vectorized', 'rloo', 'rloo_vectorized', 'gpg']) {
    for (const normAdvByStdInGrpo of estimator.startsWith('grpo') ? [true, false] : [true]) {
      it(`${estimator} (normAdvByStdInGrpo=${normAdvByStdInGrpo}): 4096 interleaved rows in groups of 1..40 agree with the float64 reference`, async () => {
        const r = rng(7);
        const B = 4096;
        const T = 24;
        const index: string[] = [];
        while (index.length < B) {
          const g = `uid-${Math.floor(r() * 300)}`;
          index.push(g);
        }
        const rewards = new Float64Array(B * T);
        const mask = new Float64Array(B * T);
        for (let i = 0; i < B; i++) {
          const L = 1 + Math.floor(r() * T);
          for (let j = 0; j < L; j++) mask[i * T + j] = 1;
          rewards[i * T + L - 1] = [-1, 0, 1, 0.5][Math.floor(r() * 4)] as number;
        }
        const inputs = { tokenLevelRewards: rewards, responseMask: mask, index, shape: [B, T] as const };
        const cpu = computeAdvantage(estimator, inputs, { normAdvByStdInGrpo });
        const gpu = await computeAdvantageGpu(engine!, estimator, inputs, { normAdvByStdInGrpo });
        expect(gpu.backend).toBe('webgpu');
        expectArrayClose(gpu.advantages, cpu.advantages, GPU_TOL, `${estimator} B=${B}`);
        expect(gpu.rowAdvantages?.length).toBe(B);
        const host = await computeAdvantageGpu(engine!, estimator, inputs, { normAdvByStdInGrpo }, { broadcastOnHost: true });
        expect(Array.from(host.advantages)).toEqual(Array.from(gpu.advantages));
      });
    }
  }

  it('estimators without a kernel run the float64 reference on the same call', async () => {
    const inputs = { tokenLevelRewards: [[1, 0], [0, 2]], responseMask: [[1, 0], [1, 1]], index: ['a', 'a'] };
    const r = await computeAdvantageGpu(engine!, 'opo', inputs);
    expect(r.backend).toBe('cpu');
    expect(Array.from(r.advantages)).toEqual(Array.from(computeAdvantage('opo', inputs).advantages));
  });
});

describe('computeAdvantageGpu without a GPU', () => {
  it('runs the CPU reference when engine.gpu is null', async () => {
    const inputs = { tokenLevelRewards: [[1], [0], [2]], responseMask: [[1], [1], [1]], index: ['a', 'a', 'b'] };
    const r = await computeAdvantageGpu({ gpu: null }, 'grpo', inputs);
    expect(r.backend).toBe('cpu');
    expect(Array.from(r.advantages)).toEqual(Array.from(computeAdvantage('grpo', inputs).advantages));
  });
});
