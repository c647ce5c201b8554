/**
 * Matrix inputs: every `[B][T]` input of the public API is either a nested `number[][]` or a flat row-major
 * array with an explicit `shape`. This module turns both into one internal form, a row-major {@link FloatArray}
 * plus its dimensions, and validates them. Flat `Float64Array` / `Float32Array` inputs are used in place (no copy:
 * fresh memory is expensive, and every reader computes in float64 JS numbers anyway); only nested and plain-array
 * inputs are copied into a new `Float64Array`. Inputs are never mutated.
 *
 * @module
 */
import { ShapeError, ValueError } from './errors.js';

/** A flat row-major numeric array. */
export type FlatArray = Float64Array | Float32Array | readonly number[];
/**
 * The typed arrays the internal form holds: a caller's `Float32Array` is read in place, and each element is widened
 * to a float64 JS number when read, so arithmetic stays float64.
 */
export type FloatArray = Float64Array | Float32Array;
/** A nested `[rows][cols]` array. */
export type NestedMatrix = readonly (readonly number[])[];
/** A `[B][T]` input: nested, or flat with the shape given beside it. */
export type MatrixInput = NestedMatrix | FlatArray;
/** `[B, T]`: rows (sequences) and columns (response positions). */
export type Shape2D = readonly [number, number];

/**
 * The internal form of a `[rows][cols]` matrix: row-major data, read as float64 numbers. May alias a caller's
 * `Float64Array` or `Float32Array`; never written to.
 */
export interface Matrix {
  /** Row-major values, length `rows * cols`. */
  readonly data: FloatArray;
  /** Number of rows (B). */
  readonly rows: number;
  /** Number of columns (T). */
  readonly cols: number;
}

/** True when `x` is a nested `number[][]` (an array whose first element is an array, or an empty array). */
export function isNested(x: MatrixInput): x is NestedMatrix {
  return Array.isArray(x) && (x.length === 0 || Array.isArray(x[0]));
}

/** The shape of a nested matrix, checking that every row has the same length. */
export function nestedShape(x: NestedMatrix, field: string): Shape2D {
  const rows = x.length;
  const cols = rows === 0 ? 0 : (x[0] as readonly number[]).length;
  for (let i = 0; i < rows; i++) {
    const row = x[i];
    if (!Array.isArray(row)) throw new ShapeError(`${field}: row ${i} is not an array`, field);
    if (row.length !== cols) {
      throw new ShapeError(`${field}: ragged rows (row 0 has ${cols} entries, row ${i} has ${row.length})`, field);
    }
  }
  return [rows, cols];
}

function checkShape(shape: Shape2D, field: string): void {
  const [b, t] = shape;
  if (!Number.isInteger(b) || !Number.isInteger(t) || b < 0 || t < 0) {
    throw new ShapeError(`${field}: shape must be two non-negative integers, got [${b}, ${t}]`, field);
  }
}

/**
 * Normalise a `[B][T]` input to a {@link Matrix}.
 *
 * @param input - nested or flat values
 * @param field - the input's name, used in error messages
 * @param shape - required for flat inputs; when given for a nested input it must match
 */
export function toMatrix(input: MatrixInput, field: string, shape?: Shape2D): Matrix {
  if (input == null) throw new ShapeError(`${field}: missing`, field);
  if (isNested(input)) {
    const s = nestedShape(input, field);
    if (shape && (shape[0] !== s[0] || shape[1] !== s[1])) {
      throw new ShapeError(`${field}: shape [${s[0]}, ${s[1]}] does not match [${shape[0]}, ${shape[1]}]`, field);
    }
    const [rows, cols] = s;
    const data = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const row = input[i] as readonly number[];
      for (let j = 0; j < cols; j++) data[i * cols + j] = Number(row[j]);
    }
    return { data, rows, cols };
  }
  if (!shape) throw new ShapeError(`${field}: a flat array needs a shape [B, T]`, field);
  checkShape(shape, field);
  const [rows, cols] = shape;
  if (input.length !== rows * cols) {
    throw new ShapeError(`${field}: length ${input.length} does not match shape [${rows}, ${cols}] (${rows * cols})`, field);
  }
  const data = input instanceof Float64Array || input instanceof Float32Array ? input : Float64Array.from(input);
  return { data, rows, cols };
}

/** `a` itself when it is a `Float64Array`, else a float64 copy (for code that keeps or returns float64 arrays). */
export function toFloat64(a: FloatArray): Float64Array {
  return a instanceof Float64Array ? a : Float64Array.from(a);
}

/** Check that `m` has exactly the given shape. */
export function expectShape(m: Matrix, rows: number, cols: number, field: string): void {
  if (m.rows !== rows || m.cols !== cols) {
    throw new ShapeError(`${field}: shape [${m.rows}, ${m.cols}] does not match [${rows}, ${cols}]`, field);
  }
}

/** Normalise a 0/1 mask; any other value is a {@link ValueError}. */
export function toMask(input: MatrixInput, field: string, shape?: Shape2D): Matrix {
  const m = toMatrix(input, field, shape);
  const d = m.data;
  for (let k = 0; k < d.length; k++) {
    const v = d[k] as number;
    if (v !== 0 && v !== 1) {
      throw new ValueError(
        `${field}: a mask must be 0/1, got ${v} at [${Math.floor(k / m.cols)}, ${k % m.cols}]`,
        field,
      );
    }
  }
  return m;
}

/** Throw a {@link ValueError} if `m` holds a non-finite value at a position where `mask` is 1. */
export function checkFiniteAtValid(m: Matrix, mask: Matrix, field: string): void {
  const d = m.data;
  const md = mask.data;
  for (let k = 0; k < d.length; k++) {
    if (md[k] !== 0 && !Number.isFinite(d[k] as number)) {
      throw new ValueError(
        `${field}: non-finite value ${d[k]} at valid position [${Math.floor(k / m.cols)}, ${k % m.cols}]`,
        field,
      );
    }
  }
}

/** Per-row count of valid positions, L_i = Σ_t m_it. */
export function rowLengths(mask: Matrix): Float64Array {
  const { data, rows, cols } = mask;
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0, k = i * cols; j < cols; j++, k++) s += data[k] as number;
    out[i] = s;
  }
  return out;
}

/** Split a flat row-major array into a nested `[rows][cols]` array of plain numbers. */
export function toNested(data: ArrayLike<number>, rows: number, cols: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < rows; i++) out.push(Array.from({ length: cols }, (_, j) => data[i * cols + j] as number));
  return out;
}
