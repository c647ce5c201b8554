/**
 * The demo's plot: reward against step for each strategy, as a self-contained SVG (and PNG through resvg).
 *
 * @module
 */

/** One line of the plot. */
export interface PlotSeries {
  /** Legend label. */
  label: string;
  /** y values, one per step (x = index + 1). */
  values: readonly number[];
  /** CSS colour. */
  color: string;
}

/** Options of {@link rewardPlotSvg}. */
export interface PlotOptions {
  title: string;
  yLabel: string;
  xLabel?: string;
  width?: number;
  height?: number;
  /** y range; defaults to the data's range. */
  yMin?: number;
  yMax?: number;
  /** Moving-average window drawn over the raw (faint) line; 1 = none. */
  smooth?: number;
}

function movingAverage(v: readonly number[], w: number): number[] {
  if (w <= 1) return [...v];
  const out: number[] = [];
  let s = 0;
  for (let k = 0; k < v.length; k++) {
    s += v[k] as number;
    if (k >= w) s -= v[k - w] as number;
    out.push(s / Math.min(k + 1, w));
  }
  return out;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** An SVG line chart of the series. */
export function rewardPlotSvg(series: readonly PlotSeries[], opts: PlotOptions): string {
  const W = opts.width ?? 760;
  const H = opts.height ?? 420;
  const m = { l: 64, r: 150, t: 44, b: 52 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  const yMin = opts.yMin ?? Math.min(...all);
  const yMax = opts.yMax ?? Math.max(...all);
  const n = Math.max(...series.map((s) => s.values.length), 2);
  const x = (i: number): number => m.l + (pw * i) / (n - 1);
  const y = (v: number): number => m.t + ph * (1 - (v - yMin) / (yMax - yMin || 1));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="26" font-size="16" text-anchor="middle" fill="#222">${esc(opts.title)}</text>`);
  for (let k = 0; k <= 5; k++) {
    const v = yMin + ((yMax - yMin) * k) / 5;
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 8}" y="${y(v) + 4}" font-size="11" text-anchor="end" fill="#444">${v.toFixed(2)}</text>`);
  }
  for (let k = 0; k <= 5; k++) {
    const i = Math.round(((n - 1) * k) / 5);
    parts.push(`<text x="${x(i)}" y="${m.t + ph + 18}" font-size="11" text-anchor="middle" fill="#444">${i + 1}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 12}" font-size="13" text-anchor="middle" fill="#222">${esc(opts.xLabel ?? 'step')}</text>`);
  parts.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" font-size="13" text-anchor="middle" fill="#222">${esc(opts.yLabel)}</text>`);
  series.forEach((s, idx) => {
    const raw = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${raw}" fill="none" stroke="${s.color}" stroke-opacity="0.25" stroke-width="1"/>`);
    const sm = movingAverage(s.values, opts.smooth ?? 1).map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${sm}" fill="none" stroke="${s.color}" stroke-width="2.2"/>`);
    const ly = m.t + 16 + idx * 22;
    parts.push(`<line x1="${m.l + pw + 14}" x2="${m.l + pw + 40}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3"/>`);
    parts.push(`<text x="${m.l + pw + 46}" y="${ly + 4}" font-size="12" fill="#222">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Render an SVG to PNG with resvg (a registry package with a prebuilt binary); null if it is unavailable. */
export async function svgToPng(svg: string): Promise<Uint8Array | null> {
  try {
    const { Resvg } = await import('@resvg/resvg-js');
    return new Resvg(svg, { font: { loadSystemFonts: true }, background: '#ffffff' }).render().asPng();
  } catch {
    return null;
  }
}
