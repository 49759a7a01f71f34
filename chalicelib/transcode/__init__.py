"""Transcoding engine: one ffmpeg per job, CMAF (or MPEG-TS) ABR ladder, continuous timestamps."""

from .ffmpeg import FFmpegNotFoundError, find_binary, ladder_args
from .job import RenditionOutput, TranscodeJob, TranscodeResult, run
from .probe import MediaInfo, probe

__all__ = [
    "FFmpegNotFoundError",
    "MediaInfo",
    "RenditionOutput",
    "TranscodeJob",
    "TranscodeResult",
    "find_binary",
    "ladder_args",
    "probe",
    "run",
]
