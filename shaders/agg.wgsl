// agg_loss: the token pass with ℓ = lossMat (bound as ADV) and ∂ℓ/∂lossMat = 1, so GRAD = coef_row·m and
// PART[2s].x = Σ coef_row·m·ℓ (verl CA:1025-1080). OLP and LP are bound to the same buffer (finiteness check).

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  return Tok(a, vec4f(1.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
}
