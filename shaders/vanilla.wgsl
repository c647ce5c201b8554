// vanilla: PPO clip with DAPO's decoupled clip-higher (1−εl, 1+εh) and dual-clip c (verl CA:1159-1250).
// Also runs eighty-twenty (SEL_AGG: top-entropy aggregation mask) and bypass_mode's ppo_clip (its
// rejection-sampling mask is uploaded as the response mask). Gradients follow torch: clamp passes on its
// bounds, max/min split 50/50 on exact ties. Where the clipped term wins (l2 > l1) r lies outside [lo, hi], so
// its gradient is 0; where they tie (r inside, or A = 0) both gradients equal g1, so the split is g1 itself.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let raw = l - o;
  let d = clamp(raw, vec4f(-LOG_RATIO_CLAMP), vec4f(LOG_RATIO_CLAMP));
  // exp as exp2 (what GPUs compile exp to anyway): 7-11 % faster on lavapipe, error ≤ ~1e-6 relative at |d| = 20
  let r = exp2(d * 1.4426950408889634);
  let l1 = -a * r;
  let g1 = select(vec4f(0.0), l1, abs(raw) <= vec4f(LOG_RATIO_CLAMP));
  let l2 = -a * clamp(r, vec4f(P.lo), vec4f(P.hi));
  let lt = l2 > l1;
  let lc = select(l1, l2, lt);
  let gc = select(g1, vec4f(0.0), lt);
  let neg = a < vec4f(0.0);
  let l3 = -a * P.c;
  let dualTakes = neg & (l3 < lc);
  let loss = select(lc, l3, dualTakes);
  let g = select(select(gc, 0.5 * gc, neg & (l3 == lc)), vec4f(0.0), dualTakes);
  return Tok(loss, g, b2f(lt), -d, b2f(dualTakes));
}
