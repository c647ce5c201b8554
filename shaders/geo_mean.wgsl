// geo_mean (GMPO) gradient pass (verl CA:1635-1718). ROWS[row].x = −Â_i·ρ_i·gw_i / ((L_i + 1e-8)·B) from
// rowreduce.wgsl (MODE 2); ∂d*/∂d is 1 where the log-space clamp lets d through (A > 0: d ≤ εh; A < 0:
// d ≥ −εl), else 0. The loss comes from the row pass; metrics count out-of-band tokens by sign of A.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let d = l - o;
  let pos = a > vec4f(0.0);
  let neg = a < vec4f(0.0);
  let through = (pos & (d <= vec4f(P.epsHigh))) | (neg & (d >= vec4f(-P.epsLow)));
  let clipped = (d < vec4f(-P.epsLow)) | (d > vec4f(P.epsHigh));
  return Tok(vec4f(0.0), select(vec4f(0.0), rv, through), b2f(clipped & pos), -d, b2f(clipped & neg));
}
