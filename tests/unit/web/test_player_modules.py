"""The player page's pure modules (SCTE-35 decoding, break joining, grant URLs) under node --test,
fed with sections from the packager's own SCTE-35 encoder so page and packager agree."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from chalicelib.media import scte35

ROOT = Path(__file__).resolve().parents[3]


def test_the_page_modules_decode_and_join_what_the_packager_emits(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found -- install with: sudo apt-get install -y nodejs npm")
    fixtures = {
        "out": scte35.splice_insert(42, pts=None, duration=30.0).base64,
        "in": scte35.splice_insert(42, pts=12.5, duration=None, out_of_network=False).hex,
        "poStart": scte35.time_signal(100.0, "provider_po_start", 20.0, 7).base64,
        "poEnd": scte35.time_signal(120.0, "provider_po_end", None, 7).base64,
        "cancel": scte35.cancel(42).base64,
        # The 2013:xml Event payloads, as the packager writes them.
        "outXml": scte35.to_xml(scte35.splice_insert(42, pts=None, duration=30.0)),
        "poEndXml": scte35.to_xml(scte35.time_signal(120.0, "provider_po_end", None, 7)),
    }
    path = tmp_path / "scte35.json"
    path.write_text(json.dumps(fixtures))
    proc = subprocess.run([node, "--test", str(ROOT / "web" / "tests" / "markers.test.mjs")], cwd=ROOT / "web",
                          env={"PATH": "/usr/bin:/bin", "SCTE35_FIXTURES": str(path)}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 9" in proc.stdout
