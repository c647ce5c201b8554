// cispo: ℓ = −clip(r, 1−εl, 1+εh).detach()·A·lp (verl CA:1721-1779); the gradient flows for every token.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  let d = clamp(l - o, vec4f(-LOG_RATIO_CLAMP), vec4f(LOG_RATIO_CLAMP));
  let r = exp(d);
  let rc = clamp(r, vec4f(P.lo), vec4f(P.hi));
  let g = -rc * a;
  return Tok(g * l, g, b2f(r != rc), -d, vec4f(0.0));
}
