"""What the pipeline use cases depend on, as one object: the real one comes from the composition
root (`default()`), tests build one with fakes (a fake transcoder, a fixed clock)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..media.ladder import LADDERS, Ladder
from ..media.timeline import AdBreak, Timeline
from ..records import ChannelRecord, utcnow
from ..settings import Settings
from .cdn import Cdn
from .objects import ObjectStore
from .queues import Queue
from .store import PipelineStore

Prober = Callable[[str], Any]  # path -> MediaInfo (duration, start_time, ...)
Transcoder = Callable[[Any], Any]  # TranscodeJob -> TranscodeResult
Renderer = Callable[[Timeline, datetime], dict[str, str]]  # -> {path under channel root: text}
BreakReader = Callable[[Iterable[Mapping[str, Any]]], tuple[AdBreak, ...]]


def render_manifests(tl: Timeline, now: datetime) -> dict[str, str]:
    """Every manifest of a channel: HLS (master, dvr master, per-rendition live/dvr) + the MPD."""
    from ..media import dash, hls

    files = hls.render_all(tl)
    files["manifest.mpd"] = dash.render_mpd(tl, now)
    return files


def _probe(path: str) -> Any:
    from ..transcode.probe import probe

    return probe(path)


def _transcode(job: Any) -> Any:
    from ..transcode.job import run

    return run(job)


def _slate(ladder: Ladder, output_dir: str, title: str, timeout: float) -> Any:
    from ..transcode.slate import render

    return render(ladder, output_dir, title, timeout)


def _scan_cues(path: str, ext: str) -> Any:
    from .cues import scan

    return scan(path, ext)


def _breaks(items: Iterable[Mapping[str, Any]]) -> tuple[AdBreak, ...]:
    from ..control.adbreaks import to_timeline_breaks

    return to_timeline_breaks(items)


@dataclass
class Deps:
    settings: Settings
    store: PipelineStore
    objects: ObjectStore
    queue: Queue
    cdn: Cdn | None
    probe: Prober = _probe
    transcode: Transcoder = _transcode
    render_slate: Callable[[Ladder, str, str, float], Any] = _slate  # -> transcode.slate.Templates
    render: Renderer = render_manifests
    ad_breaks: BreakReader = _breaks
    scan_cues: Callable[[str, str], Any] = _scan_cues  # chunk path, ext -> media.scte35.TsScan | None
    now: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = time.sleep  # the packager waits out a sub-second remainder of a timer
    lease_seconds: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)

    def ladder(self, meta: ChannelRecord | None) -> Ladder:
        """The channel's ladder if it names a known one, else the stage default."""
        return LADDERS[self.ladder_name(meta)]

    def ladder_name(self, meta: ChannelRecord | None) -> str:
        name = meta.ladder if meta is not None and meta.ladder in LADDERS else self.settings.ladder
        return name if name in LADDERS else "default"


def default() -> Deps:
    from .. import root
    from .queues import SqsQueue

    return Deps(
        settings=root.settings(),
        store=root.pipeline_store(),
        objects=root.object_store(),
        queue=SqsQueue(root.client("sqs")),
        cdn=root.cdn(),
    )
