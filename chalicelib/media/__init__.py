"""Pure media core: no boto3, no environment. Text and bytes in, dataclasses out.

- `ladder`    what every rendition is encoded as (shared by transcoder and packager)
- `timeline`  the channel model every manifest renders from, plus window rules (RFC 8216 6.2)
- `scte35`    SCTE-35 cues through threefive; 33-bit 90 kHz PTS arithmetic
- `adbreaks`  ad breaks snapped to segment boundaries, with the cues they carry
- `hls`       master + media playlists (CUE-OUT / DATERANGE markers)
- `dash`      dynamic/static MPD with SegmentTimeline and SCTE-35 EventStream
- `source`    the encoder's HLS playlist and its cue tags, read through m3u8
- `synthetic` deterministic timelines for tests, benchmarks and the demo

`tests/unit/media/test_media_purity.py` enforces the purity rule.
"""
