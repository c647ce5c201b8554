/**
 * The token selection of the "Beyond the 80/20 rule" mode (SPEC.md §11): the top ρ fraction of valid tokens by
 * entropy. This is the package's one public selection function; the `eighty-twenty` policy loss (CPU and WebGPU)
 * applies the same rule through the same code (`selectTopEntropy`).
 *
 * @module
 */
import { ConfigError, ShapeError } from '../errors.js';
import { selectTopEntropy } from '../losses/eightyTwenty.js';
import { type MatrixInput, type Shape2D, checkFiniteAtValid, expectShape, isNested, nestedShape, toMask, toMatrix } from '../matrix.js';

/**
 * The 0/1 mask of the k = max(1, ⌈ratio·N⌉) valid tokens with the largest entropy (N = number of valid tokens;
 * N = 0 gives an all-zero mask). Exact top-k, not a ≥-threshold: ties are broken by the lowest row-major index.
 * ⌈·⌉ is the ceiling of the real product (0.2·15 counts as 3, not 4).
 *
 * @param entropy - per-token entropy `[B][T]` (nested, or flat with `shape`)
 * @param mask - 0/1 response mask `[B][T]`
 * @param ratio - ρ ∈ [0, 1] (`actor.entropy_top_ratio`; the paper uses 0.2)
 * @param shape - `[B, T]` for flat inputs
 * @returns the selection mask, flat `[B·T]`, a subset of `mask`
 */
export function entropyTopMask(entropy: MatrixInput, mask: MatrixInput, ratio: number, shape?: Shape2D): Float64Array {
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) throw new ConfigError(`ratio must be in [0, 1], got ${String(ratio)}`, 'ratio');
  const sh = shape ?? (isNested(mask) ? nestedShape(mask, 'mask') : undefined);
  if (!sh) throw new ShapeError('entropyTopMask: shape [B, T] is required for flat inputs', 'shape');
  const m = toMask(mask, 'mask', sh);
  const h = toMatrix(entropy, 'entropy', sh);
  expectShape(h, m.rows, m.cols, 'entropy');
  checkFiniteAtValid(h, m, 'entropy');
  return selectTopEntropy(h.data, m.data, ratio, new Float64Array(m.data.length)) as Float64Array;
}
