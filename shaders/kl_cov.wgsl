// kl_cov: ℓ = −A·r + sel·coef·|lp − olp| on the unclamped ratio; sel marks the top-k covariance tokens
// chosen by the host (verl CA:1555-1632). Metric ppo_kl = masked_mean(|d|). abs'(0) = 0 as in torch.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let d = l - o;
  let r = exp(d);
  let on = sel != vec4f(0.0);
  let kl = select(vec4f(0.0), P.klCoef * abs(d), on);
  let gk = select(vec4f(0.0), P.klCoef * sign(d), on);
  return Tok(-a * r + kl, -a * r + gk, vec4f(0.0), abs(d), vec4f(0.0));
}
