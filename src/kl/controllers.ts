/**
 * verl's KL coefficient controllers for the KL-in-reward penalty (core_algos.py): fixed and adaptive
 * (Ziegler et al. 2019), and the `get_kl_controller` factory.
 *
 * @module
 */
import { ConfigError } from '../errors.js';

/** What both controllers share: the current coefficient β and an update after each batch. */
export interface KlController {
  /** The current coefficient β. */
  readonly value: number;
  /** Update β from the batch's measured KL and its size (verl: n_steps = batch size). */
  update(currentKl: number, nSteps: number): void;
}

function finite(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${field} must be a finite number, got ${String(v)}`, field);
  return v;
}

/** A constant β (`algorithm.kl_ctrl.type = fixed`); `update` is a no-op. */
export class FixedKLController implements KlController {
  /** The coefficient. */
  value: number;
  /** @param klCoef - β (`algorithm.kl_ctrl.kl_coef`, default 0.001) */
  constructor(klCoef: number) {
    this.value = finite(klCoef, 'klCoef');
  }
  /** No-op, as in verl. */
  update(_currentKl: number, _nSteps: number): void {}
}

/**
 * The adaptive controller: e = clip(current/target − 1, −0.2, 0.2); β ← β·(1 + e·nSteps/horizon). Like verl it
 * does not keep β positive (a large nSteps/horizon can flip its sign).
 */
export class AdaptiveKLController implements KlController {
  /** The current coefficient. */
  value: number;
  /** Target KL. */
  readonly target: number;
  /** Horizon (> 0). */
  readonly horizon: number;
  /**
   * @param initKlCoef - initial β
   * @param targetKl - target KL (`algorithm.kl_ctrl.target_kl`, default 0.1)
   * @param horizon - horizon (`algorithm.kl_ctrl.horizon`, default 10000), > 0
   */
  constructor(initKlCoef: number, targetKl: number, horizon: number) {
    this.value = finite(initKlCoef, 'initKlCoef');
    this.target = finite(targetKl, 'targetKl');
    this.horizon = finite(horizon, 'horizon');
    if (!(horizon > 0)) throw new ConfigError(`horizon must be larger than 0, got ${horizon}`, 'horizon');
  }
  /** Apply one update (np.clip, then multiply). */
  update(currentKl: number, nSteps: number): void {
    const e = Math.min(Math.max(currentKl / this.target - 1, -0.2), 0.2);
    const mult = 1 + (e * nSteps) / this.horizon;
    this.value *= mult;
  }
}

/** `algorithm.kl_ctrl` in camelCase. */
export interface KlControllerConfig {
  /** `fixed` (default) or `adaptive`. */
  type?: 'fixed' | 'adaptive';
  /** Initial / fixed β (default 0.001). */
  klCoef?: number;
  /** Horizon of the adaptive controller (default 10000). */
  horizon?: number;
  /** Target KL of the adaptive controller (default 0.1). */
  targetKl?: number;
}

/** verl's `get_kl_controller`: build the controller `config.type` names, with verl's defaults. */
export function createKlController(config: KlControllerConfig = {}): KlController {
  const type = config.type ?? 'fixed';
  const klCoef = config.klCoef ?? 0.001;
  if (type === 'fixed') return new FixedKLController(klCoef);
  if (type === 'adaptive') return new AdaptiveKLController(klCoef, config.targetKl ?? 0.1, config.horizon ?? 10000);
  throw new ConfigError(`klCtrl.type must be "fixed" or "adaptive", got ${JSON.stringify(type)}`, 'type');
}
