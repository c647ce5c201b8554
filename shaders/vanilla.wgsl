// vanilla: PPO clip with DAPO's decoupled clip-higher (1−εl, 1+εh) and dual-clip c (verl CA:1159-1250).
// Also runs eighty-twenty (SEL_AGG: top-entropy aggregation mask) and bypass_mode's ppo_clip (its
// rejection-sampling mask is uploaded as the response mask). Gradients follow torch: clamp passes on its
// bounds, max/min split 50/50 on exact ties.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let raw = l - o;
  let d = clamp(raw, vec4f(-LOG_RATIO_CLAMP), vec4f(LOG_RATIO_CLAMP));
  let dd = b2f(abs(raw) <= vec4f(LOG_RATIO_CLAMP));
  let r = exp(d);
  let l1 = -a * r;
  let g1 = l1 * dd;
  let rc = clamp(r, vec4f(P.lo), vec4f(P.hi));
  let l2 = -a * rc;
  let g2 = select(vec4f(0.0), g1, (r >= vec4f(P.lo)) & (r <= vec4f(P.hi)));
  let gt = l1 > l2;
  let lt = l2 > l1;
  let lc = select(l1, l2, lt);
  let gc = select(select(0.5 * (g1 + g2), g2, lt), g1, gt);
  let neg = a < vec4f(0.0);
  let l3 = -a * P.c;
  let dualTakes = l3 < lc;
  let dualTie = l3 == lc;
  let loss = select(lc, select(lc, l3, dualTakes), neg);
  let gneg = select(select(gc, 0.5 * gc, dualTie), vec4f(0.0), dualTakes);
  let g = select(gc, gneg, neg);
  return Tok(loss, g, b2f(lt), -d, b2f(neg & (lc > l3)));
}
