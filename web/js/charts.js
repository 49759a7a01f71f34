// Time-series charts of what the player does (uPlot, vendored from node_modules like the engines).
// One small chart per quantity; every sample is also kept in `history` for the page's test hooks.
export const SERIES = [
  { key: "buffer", title: "Buffer level", unit: "s", lines: [["buffer", "buffer ahead", "#3fa7ff"]] },
  { key: "dropped", title: "Dropped frames", unit: "frames", lines: [["dropped", "dropped (total)", "#ff6b6b"]] },
  // The bandwidth estimate is often 100x the rendition's bitrate on a fast link: its own axis (right).
  { key: "bitrate", title: "Bitrate", unit: "kb/s", lines: [["bitrate", "playing", "#7bd88f"], ["bandwidth", "estimate (right)", "#8a94a3", "bw"]] },
  { key: "latency", title: "Latency", unit: "s", lines: [["latency", "glass-to-glass", "#ffb547"], ["edge", "behind live edge", "#c792ea"]] },
  { key: "rate", title: "Playback rate", unit: "x", lines: [["rate", "rate", "#e6e9ee"]] },
];

export class Charts {
  constructor(container, windowSeconds) {
    this.windowSeconds = windowSeconds || 180;
    this.history = { t: [] };
    SERIES.forEach((s) => s.lines.forEach(([k]) => { this.history[k] = []; }));
    this.plots = [];
    this.available = typeof window.uPlot === "function";
    if (!this.available) return;
    SERIES.forEach((s) => {
      const box = document.createElement("div");
      box.className = "chart";
      box.dataset.testid = "chart-" + s.key;
      box.setAttribute("data-testid", "chart-" + s.key);
      const h = document.createElement("h3");
      h.textContent = s.title + " (" + s.unit + ")";
      box.appendChild(h);
      container.appendChild(box);
      const opts = {
        width: Math.max(240, Math.floor(container.clientWidth / 2) - 16), height: 120,
        legend: { show: true, live: false },
        cursor: { show: false },
        axes: [{ stroke: "#8a94a3", grid: { stroke: "#2f3742" }, size: 28 },
          { stroke: "#8a94a3", grid: { stroke: "#2f3742" }, size: 60 }].concat(
          s.lines.some((l) => l[3]) ? [{ scale: "bw", side: 1, stroke: "#8a94a3", grid: { show: false }, size: 60 }] : []),
        scales: { x: { time: true } },
        series: [{}].concat(s.lines.map(([, label, color, scale]) => Object.assign(
          { label: label, stroke: color, width: 1.5, spanGaps: false }, scale ? { scale: scale } : {}))),
      };
      const plot = new window.uPlot(opts, [[]].concat(s.lines.map(() => [])), box);
      this.plots.push({ spec: s, plot: plot });
    });
  }

  push(sample) {
    const h = this.history;
    h.t.push(sample.t);
    Object.keys(h).forEach((k) => { if (k !== "t") h[k].push(sample[k] == null || !Number.isFinite(sample[k]) ? null : sample[k]); });
    while (h.t.length && h.t[0] < sample.t - this.windowSeconds) Object.keys(h).forEach((k) => h[k].shift());
    this.plots.forEach(({ spec, plot }) => plot.setData([h.t].concat(spec.lines.map(([k]) => h[k]))));
  }

  // Counts of non-null samples per series (test hook: each chart really has data).
  filled() {
    const out = {};
    Object.keys(this.history).forEach((k) => { out[k] = this.history[k].filter((v) => v != null).length; });
    return out;
  }

  reset() {
    Object.keys(this.history).forEach((k) => { this.history[k].length = 0; });
    this.plots.forEach(({ spec, plot }) => plot.setData([[]].concat(spec.lines.map(() => []))));
  }
}
