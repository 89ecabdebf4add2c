// The embeddings page's script: draws the map of `figure.embedding-map` on its canvas from the
// JSON API (`data-src`), one dot per client or item in the colour the server chose, and names the
// point under the pointer (its id and colour value). While the server computes UMAP the map is
// PCA and the script asks again until UMAP is there.

/** How often the page asks whether UMAP is ready. */
const POLL_MS = 2000;
/** The pointer names the nearest point within this many CSS pixels. */
const HOVER_PX = 10;
const PAD = 14;

const figure = document.querySelector("figure.embedding-map");
if (figure) start(figure);

function start(figure) {
  const canvas = figure.querySelector("canvas");
  const tip = figure.querySelector(".map-tip");
  const note = document.querySelector("[data-field=map-note]");
  let data = null;
  let screen = null;

  async function load() {
    const res = await fetch(figure.dataset.src);
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    data = await res.json();
    figure.dataset.method = data.method;
    if (note) note.textContent = data.note;
    draw();
    if (data.pending) setTimeout(() => load().catch(report), POLL_MS);
  }

  function report(e) {
    if (note) note.textContent = `The map could not be loaded: ${e.message}`;
  }

  function draw() {
    const width = Math.max(200, figure.clientWidth);
    const height = Math.round(Math.min(640, Math.max(280, width * 0.7)));
    const ratio = globalThis.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    screen = place(data.x, data.y, width, height);
    const r = data.count > 20000 ? 1.2 : data.count > 2000 ? 2 : data.count > 200 ? 3.2 : 4.5;
    ctx.globalAlpha = data.count > 2000 ? 0.7 : 0.85;
    // One path per colour: a few fills instead of one per point.
    const { palette, index } = data.colour;
    for (let c = 0; c < palette.length; c++) {
      ctx.fillStyle = palette[c];
      ctx.beginPath();
      for (let i = 0; i < data.count; i++) {
        if (index[i] !== c) continue;
        ctx.moveTo(screen.x[i] + r, screen.y[i]);
        ctx.arc(screen.x[i], screen.y[i], r, 0, 2 * Math.PI);
      }
      ctx.fill();
    }
    figure.dataset.points = String(data.count);
  }

  /** Map coordinates to CSS pixels, one scale for both axes so distances keep their shape. */
  function place(xs, ys, width, height) {
    const min = (a) => a.reduce((m, v) => Math.min(m, v), Infinity);
    const max = (a) => a.reduce((m, v) => Math.max(m, v), -Infinity);
    const [x0, x1, y0, y1] = [min(xs), max(xs), min(ys), max(ys)];
    const scale = Math.min(
      (width - 2 * PAD) / Math.max(x1 - x0, 1e-12),
      (height - 2 * PAD) / Math.max(y1 - y0, 1e-12),
    );
    const ox = (width - (x1 - x0) * scale) / 2;
    const oy = (height - (y1 - y0) * scale) / 2;
    return {
      x: xs.map((v) => ox + (v - x0) * scale),
      // Up is up: larger y higher on the screen.
      y: ys.map((v) => height - oy - (v - y0) * scale),
    };
  }

  function nearest(px, py) {
    let best = -1;
    let bestD = HOVER_PX * HOVER_PX;
    for (let i = 0; i < data.count; i++) {
      const dx = screen.x[i] - px;
      const dy = screen.y[i] - py;
      const d = dx * dx + dy * dy;
      if (d <= bestD) {
        bestD = d;
        best = i;
      }
    }
    return best;
  }

  canvas.addEventListener("pointermove", (ev) => {
    if (!data || !screen) return;
    const box = canvas.getBoundingClientRect();
    const px = ev.clientX - box.left;
    const py = ev.clientY - box.top;
    const i = nearest(px, py);
    if (i < 0) {
      tip.hidden = true;
      delete figure.dataset.hover;
      return;
    }
    const value = data.colour.values ? data.colour.values[i] : null;
    tip.textContent = `${data.kind === "items" ? "item" : "client"} ${data.ids[i]}` +
      (value === null ? "" : ` · ${data.colour.name}: ${value}`);
    tip.hidden = false;
    // Beside the pointer, kept inside the figure.
    const left = Math.min(px + 12, box.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, py - tip.offsetHeight - 8)}px`;
    figure.dataset.hover = data.ids[i];
  });
  canvas.addEventListener("pointerleave", () => {
    tip.hidden = true;
    delete figure.dataset.hover;
  });

  let resizing = 0;
  globalThis.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => data && draw(), 100);
  });

  load().catch(report);
}
