/**
 * A reward written in TypeScript for a verl run: verl's DAPO math scorer for math data sources, with a small
 * format bonus recorded as an extra. Serve it with
 *
 *   npx lumirag-rl serve --reward examples/verl/my-reward.ts --port 8470 --token "$LUMIRAG_RL_BRIDGE_TOKEN"
 *
 * (in this repository: `npx tsx src/cli/main.ts serve --reward examples/verl/my-reward.ts ...`).
 * In your own project import from 'lumirag-rl' instead of '../../src/index.js'.
 */
import { defineReward, mathDapoScore } from '../../src/index.js';

export default defineReward(({ dataSource, solutionStr, groundTruth }) => {
  if (!/^(math_dapo|math|aime)/.test(dataSource)) throw new Error(`no reward for data source ${dataSource}`);
  const verdict = mathDapoScore(solutionStr, String(groundTruth));
  // verl collects every key of the returned dict into reward_extra_info (keys must be the same for every sample).
  return { score: verdict.score, acc: verdict.acc, pred: verdict.pred, has_answer_line: /Answer\s*:/i.test(solutionStr) };
});
