/**
 * The `math_dapo` scorer verl uses for DAPO math (`verl/utils/reward_score/math_dapo.py`, SPEC.md §10), reimplemented:
 * keep the last 300 characters, take the last `Answer: ...` line (Minerva style) or, in strict mode, the last
 * `\boxed{...}` of the last 100 characters, normalise, compare with the ground truth, and return
 * `{ score: ±1, acc, pred }`.
 *
 * Strings are handled as Python does: by code points (not UTF-16 units), `.` never matching `\n` only, Python's
 * whitespace set for `\s` and `strip()`, and Python's `str.isdigit()` digit set.
 *
 * @module
 */
import { RewardError } from '../errors.js';
import { defineReward, type RewardHook } from './hooks.js';

/** Options of {@link mathDapoScore} (verl's `compute_score(solution_str, ground_truth, strict_box_verify, pause_tokens_index)`). */
export interface MathDapoOptions {
  /** Compare the last `\boxed{}` of the last 100 characters, un-normalised, with the ground truth (verl default false). */
  strictBoxVerify?: boolean;
  /** Strict mode only: 4 character indices; the window starts 100 characters before the last one (verl default None). */
  pauseTokensIndex?: readonly number[] | null;
}

/** verl's math_dapo result: `score` is +1 when correct and −1 otherwise, `acc` the verdict, `pred` the extracted answer. */
export type MathDapoResult = {
  /** +1.0 when correct, −1.0 otherwise. */
  score: number;
  /** Whether the prediction matched. */
  acc: boolean;
  /** The normalised (Minerva) or raw boxed (strict) prediction, `"[INVALID]"`-derived when none was found. */
  pred: string;
};

// Python's str.isspace() / re `\s` set (identical for str patterns).
const PY_WS = '\\u{9}-\\u{D}\\u{1C}-\\u{20}\\u{85}\\u{A0}\\u{1680}\\u{2000}-\\u{200A}\\u{2028}\\u{2029}\\u{202F}\\u{205F}\\u{3000}';
// Python's str.isdigit(): Nd plus the characters with Numeric_Type=Digit (superscripts, circled digits, ...).
const PY_DIGIT_EXTRA =
  '\\u{B2}-\\u{B3}\\u{B9}\\u{1369}-\\u{1371}\\u{19DA}\\u{2070}\\u{2074}-\\u{2079}\\u{2080}-\\u{2089}\\u{2460}-\\u{2468}' +
  '\\u{2474}-\\u{247C}\\u{2488}-\\u{2490}\\u{24EA}\\u{24F5}-\\u{24FD}\\u{24FF}\\u{2776}-\\u{277E}\\u{2780}-\\u{2788}' +
  '\\u{278A}-\\u{2792}\\u{10A40}-\\u{10A43}\\u{10E60}-\\u{10E68}\\u{11052}-\\u{1105A}\\u{1F100}-\\u{1F10A}';
const IS_DIGIT = new RegExp(`^[\\p{Nd}${PY_DIGIT_EXTRA}]+$`, 'u');
const STRIP = new RegExp(`^[${PY_WS}]+|[${PY_WS}]+$`, 'gu');
const ANSWER_LINE = new RegExp(`answer[${PY_WS}]*:[${PY_WS}]*([^\\n]+)`, 'giu');

/** Literal substitutions, applied in order (verl's SUBSTITUTIONS). */
const SUBSTITUTIONS: readonly (readonly [string, string])[] = [
  ['an ', ''],
  ['a ', ''],
  ['.$', '$'],
  ['\\$', ''],
  ['\\ ', ''],
  [' ', ''],
  ['mbox', 'text'],
  [',\\text{and}', ','],
  ['\\text{and}', ','],
  ['\\text{m}', '\\text{}'],
];

/** Literal removals, applied in order after the substitutions (verl's REMOVED_EXPRESSIONS). */
const REMOVED_EXPRESSIONS: readonly string[] = [
  'square', 'ways', 'integers', 'dollars', 'mph', 'inches', 'hours', 'km', 'units', '\\ldots', 'sue', 'points',
  'feet', 'minutes', 'digits', 'cents', 'degrees', 'cm', 'gm', 'pounds', 'meters', 'meals', 'edges', 'students',
  'childrentickets', 'multiples', '\\text{s}', '\\text{.}', '\\text{\ns}', '\\text{}^2', '\\text{}^3', '\\text{\n}',
  '\\text{}', '\\mathrm{th}', '^\\circ', '^{\\circ}', '\\;', ',\\!', '{,}', '"', '\\dots',
];

/** Python `s[start:]` on code points (negative start counts from the end). */
function pySliceFrom(s: string, start: number): string {
  const cps = Array.from(s);
  const i = start < 0 ? Math.max(0, cps.length + start) : Math.min(start, cps.length);
  return cps.slice(i).join('');
}

/**
 * The last `\boxed{...}` of `s` (braces balanced), or `null` when there is none or it is not closed
 * (verl `last_boxed_only_string`).
 */
export function lastBoxedOnlyString(s: string): string | null {
  const idx = s.lastIndexOf('\\boxed{');
  if (idx < 0) return null;
  let open = 0;
  for (let i = idx; i < s.length; i++) {
    const c = s[i];
    if (c === '{') open++;
    if (c === '}') {
      open--;
      if (open === 0) return s.slice(idx, i + 1);
    }
  }
  return null;
}

/** Strip the `\boxed{` ... `}` wrapper (verl `remove_boxed`); throws a {@link RewardError} if `s` is not one. */
export function removeBoxed(s: string): string {
  const left = '\\boxed{';
  if (!s.startsWith(left) || !s.endsWith('}') || s.length < left.length + 1) {
    throw new RewardError(`box error: ${s}`, 'boxed');
  }
  return s.slice(left.length, -1);
}

/**
 * Normalise a final answer (verl `normalize_final_answer`, from the Minerva/hendrycks_math harness): keep what follows
 * the last `=`, apply the substitutions and removals, unwrap `$...$`, `\text{}`, `\textbf{}`, `\overline{}`,
 * `\boxed{}`, expand `\fracab` / `\sqrta` shorthands, drop `$`, remove thousands commas of pure digit strings, strip.
 */
export function normalizeFinalAnswer(finalAnswer: string): string {
  let s = finalAnswer.split('=').at(-1) ?? '';
  for (const [before, after] of SUBSTITUTIONS) s = s.replaceAll(before, after);
  for (const expr of REMOVED_EXPRESSIONS) s = s.replaceAll(expr, '');
  s = s.replace(/([^\n]*?)(\$)([^\n]*?)(\$)([^\n]*)/gu, (_m, _a, _b, inner: string) => `$${inner}$`);
  s = s.replace(/(\\text\{)([^\n]*?)(\})/gu, (_m, _a, inner: string) => inner);
  s = s.replace(/(\\textbf\{)([^\n]*?)(\})/gu, (_m, _a, inner: string) => inner);
  s = s.replace(/(\\overline\{)([^\n]*?)(\})/gu, (_m, _a, inner: string) => inner);
  s = s.replace(/(\\boxed\{)([^\n]*)(\})/gu, (_m, _a, inner: string) => inner);
  s = s.replace(/(frac)([^{])([^\n])/gu, (_m, _f, a: string, b: string) => `frac{${a}}{${b}}`);
  s = s.replace(/(sqrt)([^{])/gu, (_m, _f, a: string) => `sqrt{${a}}`);
  s = s.replaceAll('$', '');
  if (IS_DIGIT.test(s.replaceAll(',', ''))) s = s.replaceAll(',', '');
  return s.replace(STRIP, '');
}

/** Minerva check: the last `Answer: ...` line (case-insensitive), normalised, equals the normalised ground truth. */
function isCorrectMinerva(solution: string, gt: string): [boolean, string] {
  let extracted = '[INVALID]';
  for (const m of solution.matchAll(ANSWER_LINE)) extracted = m[1];
  const pred = normalizeFinalAnswer(extracted);
  return [pred === normalizeFinalAnswer(gt), pred];
}

/** Strict check: the last `\boxed{}` of the last 100 characters (or of the pause-token window) equals `gt` verbatim. */
function isCorrectStrictBox(pred: string, gt: string, pauseTokensIndex: readonly number[] | null | undefined): [boolean, string] {
  let window: string;
  if (pauseTokensIndex != null) {
    if (pauseTokensIndex.length !== 4) {
      throw new RewardError(`pauseTokensIndex must hold 4 indices, got ${pauseTokensIndex.length}`, 'pauseTokensIndex');
    }
    window = pySliceFrom(pred, pauseTokensIndex[3] - 100);
  } else {
    window = pySliceFrom(pred, -100);
  }
  const boxed = lastBoxedOnlyString(window);
  const extracted = boxed !== null ? removeBoxed(boxed) : '[INVALID]';
  return [extracted === gt, extracted];
}

/**
 * verl's `math_dapo.compute_score`: score a response against a ground-truth answer using its last 300 characters.
 * Returns `{ score: 1 | -1, acc, pred }`. A numeric ground truth is compared as its decimal string.
 *
 * @example
 * ```ts
 * mathDapoScore('... so the total is 12.\nAnswer: $12$', '12'); // { score: 1, acc: true, pred: '12' }
 * ```
 */
export function mathDapoScore(solutionStr: string, groundTruth: string | number, options: MathDapoOptions = {}): MathDapoResult {
  if (typeof solutionStr !== 'string') throw new RewardError(`solutionStr must be a string, got ${typeof solutionStr}`, 'solutionStr');
  let gt: string;
  if (typeof groundTruth === 'string') gt = groundTruth;
  else if (typeof groundTruth === 'number' && Number.isFinite(groundTruth)) gt = String(groundTruth);
  else throw new RewardError(`groundTruth must be a string (or a finite number), got ${typeof groundTruth}`, 'groundTruth');
  const tail = pySliceFrom(solutionStr, -300);
  const [correct, pred] = options.strictBoxVerify
    ? isCorrectStrictBox(tail, gt, options.pauseTokensIndex)
    : isCorrectMinerva(tail, gt);
  return { score: correct ? 1.0 : -1.0, acc: correct, pred };
}

/**
 * {@link mathDapoScore} as a reward hook (data sources `math_dapo`, `math` and `aime*` in verl's default scorer). Reads
 * `strict_box_verify` and `pause_tokens_index` from the call's keyword arguments when given.
 */
export const mathDapoReward: RewardHook = defineReward(
  ({ solutionStr, groundTruth, kwargs }) => {
    if (typeof groundTruth !== 'string' && typeof groundTruth !== 'number') {
      throw new RewardError(`math_dapo needs a string ground_truth, got ${groundTruth === null ? 'null' : typeof groundTruth}`, 'groundTruth');
    }
    const pti = kwargs.pause_tokens_index;
    return mathDapoScore(solutionStr, groundTruth, {
      strictBoxVerify: kwargs.strict_box_verify === true,
      pauseTokensIndex: Array.isArray(pti) && pti.every((x) => typeof x === 'number') ? (pti as number[]) : null,
    });
  },
  { name: 'math_dapo' },
);
