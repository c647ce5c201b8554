// sapo: soft gate g(r; τ) = σ(τ(r − 1))·4/τ, ℓ = −g·A, τ = τ_pos for A > 0 else τ_neg (verl CA:1329-1411).
// ∂ℓ/∂lp = −A·4σ(1−σ)·r on the clamped log-ratio.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let raw = l - o;
  let d = clamp(raw, vec4f(-LOG_RATIO_CLAMP), vec4f(LOG_RATIO_CLAMP));
  let dd = b2f(abs(raw) <= vec4f(LOG_RATIO_CLAMP));
  let r = exp(d);
  let tau = select(vec4f(P.tauNeg), vec4f(P.tauPos), a > vec4f(0.0));
  let s = 1.0 / (1.0 + exp(-tau * (r - 1.0)));
  let loss = -(s * 4.0 / tau) * a;
  let g = -a * 4.0 * s * (1.0 - s) * r * dd;
  return Tok(loss, g, vec4f(0.0), -d, vec4f(0.0));
}
