// clip_cov: max(L1, L2) on the unclamped ratio, times corr (0 for the covariance-selected tokens; the host
// uploads corr·w as W). No dual clip (verl CA:1450-1552).

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let d = l - o;
  let r = exp(d);
  let l1 = -a * r;
  let rc = clamp(r, vec4f(P.lo), vec4f(P.hi));
  let l2 = -a * rc;
  let g2 = select(vec4f(0.0), l1, (r >= vec4f(P.lo)) & (r <= vec4f(P.hi)));
  let gt = l1 > l2;
  let lt = l2 > l1;
  let loss = select(l1, l2, lt);
  let g = select(select(0.5 * (l1 + g2), g2, lt), l1, gt);
  return Tok(loss, g, vec4f(0.0), -d, vec4f(0.0));
}
