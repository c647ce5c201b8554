/**
 * The demo's verifiable task: "a+b=" answered as decimal digits then EOS. Responses decode to
 * `"Answer: <digits>"` so that the math_dapo-style verifier scores them exactly as it scores an LLM's answer.
 *
 * @module
 */

/** Token ids 0..9 are the digits; 10 is EOS. */
export const EOS = 10;
/** Vocabulary size. */
export const VOCAB = 11;

/** One prompt of the task. */
export interface ArithmeticPrompt {
  /** Stable id (the group's uid for dynamic sampling). */
  id: string;
  a: number;
  b: number;
  /** verl's `reward_model.ground_truth`. */
  groundTruth: string;
  /** The prompt text, for display. */
  text: string;
}

/** Every prompt of the task with operands 0..operands-1. */
export function arithmeticPrompts(operands: number): ArithmeticPrompt[] {
  const out: ArithmeticPrompt[] = [];
  for (let a = 0; a < operands; a++) {
    for (let b = 0; b < operands; b++) out.push({ id: `${a}+${b}`, a, b, groundTruth: String(a + b), text: `${a}+${b}=` });
  }
  return out;
}

/** The response text a verifier sees: the digits before EOS, after "Answer: " (EOS itself is stripped, as verl's DAPO manager strips the eos string). */
export function decodeResponse(tokens: readonly number[]): string {
  let s = '';
  for (const t of tokens) {
    if (t === EOS) break;
    s += String(t);
  }
  return `Answer: ${s}`;
}
