"""The ffmpeg Lambda layer: built reproducibly, within Lambda's limits, and its binary transcodes."""

from __future__ import annotations

import importlib.util
import subprocess
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from transcode_source import Channel

from chalicelib.media import grid
from chalicelib.transcode import boxes, probe, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ffmpeg_layer_build", ROOT / "layers" / "ffmpeg" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    build = load_build()
    try:
        manifest = build.build()  # cached under layers/ffmpeg/build when up to date
    except build.BuildError as exc:
        pytest.skip(f"layer not buildable here: {exc}")
    opt = tmp_path_factory.mktemp("opt")  # what Lambda mounts at /opt
    with zipfile.ZipFile(ROOT / "layers" / "ffmpeg" / "build" / "ffmpeg-layer.zip") as z:
        z.extractall(opt)
        for info in z.infolist():  # zipfile drops the exec bit; Lambda keeps it
            (opt / info.filename).chmod(info.external_attr >> 16 & 0o777)
    return manifest, opt


def test_given_layer_when_built_then_within_lambda_limits_and_documented(
    layer: tuple[dict[str, object], Path]
) -> None:
    manifest, _ = layer
    assert manifest["binaries"] == ["bin/ffmpeg"]
    assert isinstance(manifest["unzipped_bytes"], int) and manifest["unzipped_bytes"] < 250 * 1024 * 1024
    assert manifest["upload"] == ("s3" if int(str(manifest["zip_bytes"])) > 50 * 1024 * 1024 else "direct")
    assert manifest["runs_on_al2023"] is True
    with zipfile.ZipFile(ROOT / "layers" / "ffmpeg" / "build" / "ffmpeg-layer.zip") as z:
        assert [(i.filename, i.date_time, i.external_attr >> 16) for i in z.infolist()] == [
            ("bin/ffmpeg", (1980, 1, 1, 0, 0, 0), 0o100755)
        ]


def test_given_same_inputs_when_zipped_twice_then_same_bytes(tmp_path: Path) -> None:
    # Same pin -> same layer hash, so a redeploy does not publish a new layer version.
    (tmp_path / "ffmpeg").write_bytes(b"\x7fELF fake binary" * 100)
    build = load_build()
    build.write_zip({"bin/ffmpeg": str(tmp_path / "ffmpeg")}, str(tmp_path / "a.zip"))
    (tmp_path / "ffmpeg").touch()  # a new mtime must not change the zip
    build.write_zip({"bin/ffmpeg": str(tmp_path / "ffmpeg")}, str(tmp_path / "b.zip"))
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_given_layer_binary_when_run_then_it_has_what_the_transcoder_needs(
    layer: tuple[dict[str, object], Path]
) -> None:
    _, opt = layer
    ffmpeg = str(opt / "bin" / "ffmpeg")
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=30, check=True)
    assert version.stdout.startswith("ffmpeg version")
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    assert "libx264" in encoders and " aac " in encoders


def test_given_only_the_layer_ffmpeg_when_a_chunk_is_transcoded_then_valid_cmaf(
    layer: tuple[dict[str, object], Path], channel: Channel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, opt = layer
    monkeypatch.setenv("FFMPEG_PATH", str(opt / "bin" / "ffmpeg"))  # as found at /opt/bin in Lambda
    info = probe(str(channel.chunks[4]))
    assert info.frames == 50
    result = run(channel.job(4, tmp_path))
    for out in result.outputs:
        init = Path(out.init_path).read_bytes()
        frags = boxes.fragments_info(Path(out.segment_path).read_bytes(), init)
        assert frags[0].starts_with_sync
        if out.rendition == "audio":  # whole AAC frames: within a frame of the boundary, lengths exact
            lead = round(8.0 * boxes.timescale(init)) - frags[0].decode_time
            assert 0 <= lead <= (grid.ENCODE_MARGIN_FRAMES + 1) * 1024
            assert (frags[0].decode_time, out.duration) == (out.start_ticks, out.duration_ticks / 48_000)
        else:
            assert frags[0].decode_time == round(8.0 * boxes.timescale(init)) and out.duration == 2.0
