// gspo: sequence-level ratio s_i = exp(min(Σ_t d·m / max(L_i, 1), 10)) (verl CA:1253-1326). ROWS[row].x holds
// the row's mean log-ratio (rowreduce.wgsl, MODE 1). ∂ℓ_t/∂lp_t flows through lp − lp.detach() only.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let d = l - o;
  let logst = min(rv, vec4f(10.0));
  let ds = b2f(rv <= vec4f(10.0));
  let st = exp(logst);
  let l1 = -a * st;
  let g1 = l1 * ds;
  let l2 = -a * clamp(st, vec4f(P.lo), vec4f(P.hi));
  // as in vanilla.wgsl: the clipped term wins only outside [lo, hi] (gradient 0); on a tie the split is g1
  let lt = l2 > l1;
  let loss = select(l1, l2, lt);
  let g = select(g1, vec4f(0.0), lt);
  return Tok(loss, g, b2f(lt), -d, vec4f(0.0));
}
