"""The operator's first hour, as a new user would have it: build the wheel, install it into a fresh
virtualenv (no project checkout on its path), and drive a local API with the `slipstream` command
it installs, `push` included: chunks go through presigned URLs to the emulated S3 and are ingested.

The local API is `chalice local --stage local` against the emulated stack (as `make demo` serves
it). Offline: the wheel is built with the shared venv's flit_core and installed with --no-index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools import demo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
KEY = demo.LOCAL_API_KEY


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet",
                    "--wheel-dir", str(dist), str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    [built] = dist.glob("slipstream-*.whl")
    return built


@dataclass
class InstalledCli:
    """A fresh venv that has only the wheel installed; commands run outside the repository."""

    venv: Path
    cwd: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def __call__(self, *argv: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "slipstream"), *argv], cwd=self.cwd,
                              env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                              check=False)


@pytest.fixture(scope="module")
def slipstream(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> InstalledCli:
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
                          str(wheel.parent), "slipstream"], capture_output=True, text=True, timeout=300, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    clean["PATH"] = f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
    return InstalledCli(venv, tmp_path_factory.mktemp("elsewhere"), clean)


@pytest.fixture(scope="module")
def local_api(deployed: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chalice local` serving the app against the emulator the session deployed to."""
    port = demo.free_port()
    children = demo.Children(log_dir=tmp_path_factory.mktemp("chalice-local"))
    chalice = Path(sys.executable).with_name("chalice")
    children.start("chalice-local", [str(chalice), "local", "--stage", "local", "--host", "127.0.0.1",
                                     "--port", str(port), "--no-autoreload"], {**os.environ}, cwd=ROOT)
    try:
        demo.wait_until("chalice local", lambda: demo.call_api(f"http://127.0.0.1:{port}", "GET", "/channels")[0]
                        == 200, 90, children)
        yield f"http://127.0.0.1:{port}"
    finally:
        children.stop()


def test_the_wheel_ships_the_cli_alone_and_its_command_runs_without_the_project(
    wheel: Path, slipstream: InstalledCli,
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"slipstream_cli", wheel.name.split("-py3")[0] + ".dist-info"}
    assert any(n.endswith("licenses/LICENSE") for n in names)
    helped = slipstream("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("create", "start", "status", "ad-break", "stop", "push"):
        assert command in helped.stdout
    assert slipstream("--version").stdout.strip() == "slipstream 0.1.0"
    # Nothing of the Lambda side came along (no chalicelib, no powertools, no boto3).
    probe = subprocess.run([slipstream.python, "-c", "import chalicelib"], cwd=slipstream.cwd,
                           env=slipstream.env, capture_output=True, text=True, timeout=60, check=False)
    assert probe.returncode == 1 and "No module named 'chalicelib'" in probe.stderr


def test_status_from_the_installed_command_against_the_local_api(slipstream: InstalledCli, local_api: str) -> None:
    cid = f"wheel-{uuid.uuid4().hex[:6]}"
    env = {"SLIPSTREAM_API_URL": local_api, "SLIPSTREAM_API_KEY": KEY}
    created = slipstream("create", cid, "--name", "From the wheel", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created") and cid in created.stdout
    status = slipstream("status", cid, env=env)
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(None, 1) for line in status.stdout.splitlines() if " " in line)
    assert lines["channel"].strip() == cid
    assert lines["state"].strip() in ("CREATING", "IDLE")
    missing = slipstream("status", "no-such-channel", env=env)
    assert missing.returncode == 1 and "404 NotFoundError" in missing.stderr


def test_push_through_presigned_urls_reaches_ingest_labelled_as_mpeg_ts(
    slipstream: InstalledCli, local_api: str, deployed: Any, boto: Callable[[str], Any],
) -> None:
    """`push --api`: URLs from the API, PUTs straight to the (emulated) bucket, the ingest Lambda
    records each chunk; the channel's status then names the last one."""
    cid = f"push-{uuid.uuid4().hex[:6]}"
    env = {"SLIPSTREAM_API_URL": local_api, "SLIPSTREAM_API_KEY": KEY}
    assert slipstream("create", cid, env=env).returncode == 0
    demo.start_channel(local_api, cid)
    pushed = slipstream("push", "--channel", cid, "--api", local_api, "--api-key", KEY, "--no-realtime",
                        "--duration", "4", "--size", "320x180", "testsrc", env=env, timeout=180)
    assert pushed.returncode == 0, pushed.stderr
    assert "sent 2 segments" in pushed.stderr and "failed" not in pushed.stderr
    s3 = boto("s3")
    bucket = deployed.env()["INGEST_BUCKET"]
    for seq in (0, 1):
        head = s3.head_object(Bucket=bucket, Key=f"{cid}/{seq:08d}.ts")
        assert head["ContentType"] == "video/mp2t" and head["ContentLength"] > 10_000

    def last_segment_is_1() -> bool:
        out = slipstream("status", cid, env=env).stdout
        return "#1 " in out

    demo.wait_until(f"{cid}'s status to name segment #1", last_segment_is_1, 90)
