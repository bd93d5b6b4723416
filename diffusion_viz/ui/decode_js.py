"""The browser's half of the frame format (ui/atlas.py), shared by the player and the offline lesson file.

``decodeColumn(numbers, strips)`` returns, per frame, its numbers plus ``img: {x_t, x0, eps}`` as
ImageData; the arithmetic is the numpy reference's (atlas.decode_column), value for value. Also the
number formatters (fmt, fmtSnr, fmtPct, tText) both show under the pictures.
"""

DECODE_JS = r"""
// ---- the strips (ui/atlas.py): one PNG (or lossless WebP) per panel, frames stacked top to bottom -----
function readStrip(uri) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d', {willReadFrequently: true});
      ctx.drawImage(img, 0, 0);
      resolve(ctx.getImageData(0, 0, c.width, c.height).data);
    };
    img.onerror = reject;
    img.src = uri;
  });
}
async function decodeColumn(numbers, chunks) {  // a column's strips: chunks that follow each other
  const out = [];
  let start = 0;
  for (const strips of chunks) {
    out.push(...await decodeChunk(numbers.slice(start, start + strips.count), strips));
    start += strips.count;
  }
  return out;
}
function undoDeltas(data, n, px) {  // frame k = frame k-1 + delta k (mod 256), in place; alpha stays 255
  for (let i = 1; i < n; i++) {
    const base = i * px * 4, before = base - px * 4;
    for (let j = 0; j < px * 4; j += 4) {
      data[base + j] = (data[before + j] + data[base + j]) & 255;
      data[base + j + 1] = (data[before + j + 1] + data[base + j + 1]) & 255;
      data[base + j + 2] = (data[before + j + 2] + data[base + j + 2]) & 255;
    }
  }
  return data;
}
function dequantize(data, q) {  // level indices -> values: min(255, q * index); alpha stays 255
  for (let j = 0; j < data.length; j += 4) {
    data[j] = Math.min(255, q * data[j]); data[j + 1] = Math.min(255, q * data[j + 1]); data[j + 2] = Math.min(255, q * data[j + 2]);
  }
  return data;
}
async function decodeChunk(numbers, strips) {
  const derived = typeof strips.x_t !== 'string';
  const [x0, eps, third] = await Promise.all([readStrip(strips.x0), readStrip(strips.eps),
                                              readStrip(derived ? strips.x_t.fix : strips.x_t)]);
  const [h, w] = strips.size, n = strips.count, px = h * w, o = strips.predict.offset, k = strips.predict.eps_scale;
  if (strips.delta) { undoDeltas(x0, n, px); undoDeltas(eps, n, px); if (!derived) undoDeltas(third, n, px); }
  if (strips.quant > 1) { for (const a of derived ? [x0, eps] : [x0, eps, third]) dequantize(a, strips.quant); }
  const fix = third;
  const out = [];
  for (let i = 0; i < n; i++) {
    const ab = numbers[i].alpha_bar, a = Math.sqrt(ab), bk = Math.sqrt(1 - ab) * k, base = i * px * 4;
    const X0 = new ImageData(new Uint8ClampedArray(x0.subarray(base, base + px * 4)), w, h);
    const E = new ImageData(new Uint8ClampedArray(eps.subarray(base, base + px * 4)), w, h);
    if (!derived) {
      out.push({...numbers[i], img: {x_t: new ImageData(new Uint8ClampedArray(third.subarray(base, base + px * 4)), w, h),
                                     x0: X0, eps: E}});
      continue;
    }
    const XT = new ImageData(w, h), d = XT.data;
    for (let j = 0; j < px * 4; j += 4) {
      for (let c = 0; c < 3; c++) {  // P = floor(a (X0 - o) + (b k) (E - o) + o + 0.5): the same as atlas.py
        let v = Math.floor(a * (x0[base + j + c] - o[c]) + bk * (eps[base + j + c] - o[c]) + o[c] + 0.5);
        v = v < 0 ? 0 : (v > 255 ? 255 : v);
        const f = fix[base + j + c];
        d[j + c] = f ? (v + f) % 256 : v;
      }
      d[j + 3] = 255;
    }
    out.push({...numbers[i], img: {x_t: XT, x0: X0, eps: E}});
  }
  return out;
}


// ---- the numbers under the pictures (shared by the app's player and the offline lesson file) -------
const fmt = (v, d) => (v === null || v === undefined) ? '∞' : Number(v).toFixed(d);
const fmtSnr = (v) => (v === null || v === undefined) ? '∞' : (v >= 100 || v < 0.01 ? Number(v).toExponential(2) : Number(v).toFixed(3));
// alpha-bar is the share of the signal's *power* left (its amplitude is sqrt(alpha-bar)): say it in %.
const fmtPct = (ab) => { const p = 100 * ab; return p >= 0.1 ? p.toFixed(1) : (p > 0 ? p.toExponential(1) : '0'); };
function tText(f) {  // the level the scheduler uses, in training steps; the model's (rounded) t if it differs
  const lv = (f.level === undefined || f.level === null) ? f.t : f.level;
  return Math.abs(lv - f.t) > 0.05 ? `t = <b>${Number(lv).toFixed(1)}</b> <small>(model told ${fmt(f.t, 0)})</small>`
                                   : `t = <b>${fmt(f.t, 0)}</b>`;
}
"""
