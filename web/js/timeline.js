// The seek bar: the seekable window (live or DVR), what is buffered, the playhead, the live edge,
// and every ad break as a span (planned end dashed until the in-point is known). Click to seek.
import { BreakTimeline } from "./markers.js";

export class Timeline {
  constructor(root, video) {
    this.root = root;
    this.video = video;
    root.innerHTML = '<div class="track" data-testid="timeline-track"><div class="buffered"></div>' +
      '<div class="breaks"></div><div class="playhead" data-testid="timeline-playhead"></div></div>' +
      '<div class="labels"><span class="from"></span><span class="to"></span></div>';
    this.track = root.querySelector(".track");
    this.bufferedEl = root.querySelector(".buffered");
    this.breaksEl = root.querySelector(".breaks");
    this.playhead = root.querySelector(".playhead");
    this.from = root.querySelector(".from");
    this.to = root.querySelector(".to");
    this.range = null;
    this.track.addEventListener("click", (e) => {
      if (!this.range) return;
      const box = this.track.getBoundingClientRect();
      const frac = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
      this.video.currentTime = this.range.start + frac * (this.range.end - this.range.start);
    });
  }

  pct(t) {
    const r = this.range;
    return r && r.end > r.start ? Math.min(100, Math.max(0, ((t - r.start) / (r.end - r.start)) * 100)) : 0;
  }

  render(range, breaks) {
    this.range = range;
    if (!range) return;
    const t = this.video.currentTime;
    this.playhead.style.left = this.pct(t) + "%";
    const b = this.video.buffered;
    let ahead = t;
    for (let i = 0; i < b.length; i++) if (b.start(i) <= t + 0.1 && b.end(i) >= t) ahead = b.end(i);
    this.bufferedEl.style.left = this.pct(t) + "%";
    this.bufferedEl.style.width = Math.max(0, this.pct(ahead) - this.pct(t)) + "%";
    const behind = range.end - t;
    this.from.textContent = "-" + (range.end - range.start).toFixed(0) + " s";
    this.to.textContent = behind > 1 ? "live -" + behind.toFixed(1) + " s" : "live";
    const keep = new Set();
    breaks.forEach((brk) => {
      const end = BreakTimeline.endOf(brk);
      const stop = end == null ? range.end : end;
      if (stop < range.start || brk.start > range.end) return;
      keep.add(brk.key);
      let el = this.breaksEl.querySelector('[data-break-key="' + brk.key + '"]');
      if (!el) {
        el = document.createElement("div");
        el.className = "break";
        el.dataset.breakKey = brk.key;
        el.setAttribute("data-testid", "timeline-break");
        this.breaksEl.appendChild(el);
      }
      el.classList.toggle("planned", brk.end == null);
      el.style.left = this.pct(brk.start) + "%";
      el.style.width = Math.max(0.5, this.pct(stop) - this.pct(brk.start)) + "%";
      el.title = "ad break " + Array.from(brk.ids).join(" / ") + " (" + Array.from(brk.sources).join(" + ") + ")" +
        (brk.duration != null ? ", " + brk.duration.toFixed(1) + " s planned" : "");
    });
    Array.from(this.breaksEl.children).forEach((el) => { if (!keep.has(el.dataset.breakKey)) el.remove(); });
  }
}
