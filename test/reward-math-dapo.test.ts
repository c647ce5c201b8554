import { describe, expect, it } from 'vitest';
import { RewardError } from '../src/errors.js';
import {
  lastBoxedOnlyString,
  mathDapoReward,
  mathDapoScore,
  normalizeFinalAnswer,
  removeBoxed,
  rewardInput,
} from '../src/reward/index.js';

const ok = (pred: string) => ({ score: 1, acc: true, pred });
const no = (pred: string) => ({ score: -1, acc: false, pred });

describe('mathDapoScore (Minerva "Answer:" extraction, verl default)', () => {
  it.each([
    ['The sum is 42.\nAnswer: 42', '42', ok('42')],
    ['answer : $42$.', '42', ok('42')],
    ['Answer: 7\nwait, recheck\nANSWER: 8', '8', ok('8')],
    ['Answer: 7\nwait, recheck\nANSWER: 8', '7', no('8')],
    ['no final line here', '3', no('[INVALID]')],
    ['Answer: 1,000 dollars', '1000', ok('1000')],
    ['Answer: x = \\frac12', '\\frac{1}{2}', ok('\\frac{1}{2}')],
    ['Answer: 90^\\circ', '90', ok('90')],
    ['Answer: \\boxed{\\sqrt2}', '\\sqrt{2}', ok('\\sqrt{2}')],
    ['Answer: \\text{(B)}', '(B)', ok('(B)')],
    ['Answer: 12\r\n', '12', ok('12')],
  ])('%j vs %j', (sol, gt, want) => {
    expect(mathDapoScore(sol, gt)).toEqual(want);
  });

  it('looks only at the last 300 characters', () => {
    expect(mathDapoScore(`Answer: 5\n${'x'.repeat(290)}`, '5')).toEqual(ok('5')); // 300 chars: kept
    expect(mathDapoScore(`Answer: 5\n${'x'.repeat(291)}`, '5')).toEqual(no('[INVALID]')); // "A" cut off
  });

  it('counts characters as Python does (code points, not UTF-16 units)', () => {
    const emoji = '\u{1F600}';
    expect(mathDapoScore(`Answer: 5\n${emoji.repeat(290)}`, '5')).toEqual(ok('5'));
    expect(mathDapoScore(`Answer: 5\n${emoji.repeat(291)}`, '5')).toEqual(no('[INVALID]'));
  });

  it('accepts a numeric ground truth as its decimal string', () => {
    expect(mathDapoScore('Answer: 17', 17)).toEqual(ok('17'));
  });

  it('rejects a non-string ground truth with a RewardError', () => {
    expect(() => mathDapoScore('Answer: 1', null as unknown as string)).toThrow(RewardError);
  });
});

describe('normalizeFinalAnswer', () => {
  it.each([
    ['10 degrees', '10'],
    ['1,234', '1234'],
    ['1,2,3', '123'],
    ['\\$5.00', '5.00'],
    ['a 5 mph', '5'],
    ['\\dfrac{1}{2}', '\\dfrac{1}{2}'],
    ['${3}$ and $4$', '{3}'],
    ['x=y=7', '7'],
    ['\u00b2,3', '\u00b23'], // Python isdigit() counts superscript two
    [' \u3000 9 \u0085', '9'], // Python strip() whitespace set
  ])('%j -> %j', (raw, want) => {
    expect(normalizeFinalAnswer(raw)).toBe(want);
  });
});

describe('strict box verification', () => {
  it('compares the last \\boxed{} of the last 100 characters verbatim', () => {
    expect(mathDapoScore('x \\boxed{\\frac{1}{2}} done', '\\frac{1}{2}', { strictBoxVerify: true })).toEqual(ok('\\frac{1}{2}'));
    expect(mathDapoScore('x \\boxed{\\frac{1}{2}} done', '0.5', { strictBoxVerify: true })).toEqual(no('\\frac{1}{2}'));
    expect(mathDapoScore(`\\boxed{3}${'y'.repeat(100)}`, '3', { strictBoxVerify: true })).toEqual(no('[INVALID]'));
  });

  it('uses the window before the last pause token (Python negative-start slicing)', () => {
    const s = `\\boxed{3}${'y'.repeat(100)}`;
    expect(mathDapoScore(s, '3', { strictBoxVerify: true, pauseTokensIndex: [0, 0, 0, 100] })).toEqual(ok('3'));
    expect(mathDapoScore(s, '3', { strictBoxVerify: true, pauseTokensIndex: [0, 0, 0, 10] })).toEqual(no('[INVALID]'));
    expect(() => mathDapoScore(s, '3', { strictBoxVerify: true, pauseTokensIndex: [1] })).toThrow(/4 indices/);
  });

  it('lastBoxedOnlyString / removeBoxed', () => {
    expect(lastBoxedOnlyString('a \\boxed{1} b \\boxed{{2}+1} c')).toBe('\\boxed{{2}+1}');
    expect(lastBoxedOnlyString('\\boxed{1')).toBeNull();
    expect(lastBoxedOnlyString('none')).toBeNull();
    expect(removeBoxed('\\boxed{x}')).toBe('x');
    expect(() => removeBoxed('\\fbox{x}')).toThrow(/box error/);
  });
});

describe('mathDapoReward hook', () => {
  it('returns verl\'s {score, acc, pred} dict as extras', async () => {
    const r = await mathDapoReward.score(rewardInput({ data_source: 'math_dapo', solution_str: 'Answer: 4', ground_truth: '4' }));
    expect(r).toEqual({ score: 1, extras: { score: 1, acc: true, pred: '4' } });
  });

  it('reads strict_box_verify from the keyword arguments', async () => {
    const input = rewardInput({ data_source: 'aime', solution_str: '\\boxed{4}', ground_truth: '4', strict_box_verify: true });
    expect((await mathDapoReward.score(input)).extras).toEqual({ score: 1, acc: true, pred: '4' });
  });
});
