/**
 * A live loss chart on a canvas, drawn by hand (no chart library): axes with round tick values,
 * the raw loss per step as a faint line and its exponential moving average on top.
 */

/** Round tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
export function ticks(lo: number, hi: number, target = 5): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi <= lo) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Bias-corrected exponential moving average (as TensorBoard smooths). */
export function smooth(values: readonly number[], factor = 0.8): number[] {
  let acc = 0;
  let weight = 0;
  return values.map((v) => {
    acc = factor * acc + (1 - factor) * v;
    weight = factor * weight + (1 - factor);
    return acc / weight;
  });
}

export class LossChart {
  readonly #ctx: CanvasRenderingContext2D;
  readonly #canvas: HTMLCanvasElement;
  #totalSteps = 1;
  readonly values: number[] = [];

  constructor(canvas: HTMLCanvasElement) {
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2D canvas context');
    this.#canvas = canvas;
    this.#ctx = ctx;
    this.draw();
  }

  reset(totalSteps: number): void {
    this.#totalSteps = Math.max(1, totalSteps);
    this.values.length = 0;
    this.draw();
  }

  push(loss: number): void {
    this.values.push(loss);
    this.draw();
  }

  draw(): void {
    const ctx = this.#ctx;
    const W = this.#canvas.width;
    const H = this.#canvas.height;
    const m = { l: 52, r: 14, t: 26, b: 36 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, W, H);
    ctx.font = '12px sans-serif';
    ctx.fillStyle = '#222';
    ctx.textAlign = 'center';
    ctx.fillText('training loss (nats per byte)', W / 2, 16);
    const finite = this.values.filter(Number.isFinite);
    let y0 = finite.length ? Math.min(...finite) : 0;
    let y1 = finite.length ? Math.max(...finite) : 6;
    if (y1 - y0 < 1e-6) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    const pad = (y1 - y0) * 0.05;
    y0 = Math.max(0, y0 - pad);
    y1 += pad;
    const x1 = this.#totalSteps;
    const px = (x: number) => m.l + (x / x1) * pw;
    const py = (y: number) => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
    ctx.strokeStyle = '#e6e6e6';
    ctx.lineWidth = 1;
    ctx.textAlign = 'center';
    for (const t of ticks(0, x1)) {
      ctx.beginPath();
      ctx.moveTo(px(t), m.t);
      ctx.lineTo(px(t), m.t + ph);
      ctx.stroke();
      ctx.fillText(String(t), px(t), m.t + ph + 16);
    }
    ctx.textAlign = 'right';
    for (const t of ticks(y0, y1)) {
      ctx.beginPath();
      ctx.moveTo(m.l, py(t));
      ctx.lineTo(m.l + pw, py(t));
      ctx.stroke();
      ctx.fillText(String(Number(t.toPrecision(4))), m.l - 6, py(t) + 4);
    }
    ctx.textAlign = 'center';
    ctx.fillText('step', m.l + pw / 2, H - 6);
    ctx.strokeStyle = '#444';
    ctx.strokeRect(m.l, m.t, pw, ph);
    const line = (vals: readonly number[], color: string, width: number) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.beginPath();
      vals.forEach((v, i) => (i === 0 ? ctx.moveTo(px(i + 1), py(v)) : ctx.lineTo(px(i + 1), py(v))));
      ctx.stroke();
    };
    if (this.values.length > 0) {
      line(this.values, 'rgba(31, 119, 180, 0.35)', 1);
      line(smooth(this.values, this.values.length < 50 ? 0.5 : 0.8), '#1f77b4', 2);
      const last = this.values[this.values.length - 1]!;
      ctx.fillStyle = '#1f77b4';
      ctx.textAlign = 'right';
      ctx.fillText(`step ${this.values.length}: ${last.toFixed(3)}`, m.l + pw - 6, m.t + 16);
    }
  }
}
