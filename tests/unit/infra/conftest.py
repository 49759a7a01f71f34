"""Shared fixtures for the real-AWS deployment checks: the template, the policies, the shipped code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "template.yaml"
STAGES = ("dev", "prod", "lsdeploy")  # lsdeploy: `make deploy` into LocalStack (the LocalStack CI stage)


def cfn_lint_binary() -> str:
    """The cfn-lint installed beside this interpreter (the venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("cfn-lint")
    found = str(beside) if beside.exists() else shutil.which("cfn-lint")
    if not found:
        pytest.fail("cfn-lint is not installed: run make deps (it is pinned in requirements-dev.txt)")
    return found


def run_cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cfn_lint_binary(), *map(str, paths)], capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture(scope="session")
def cfn_lint() -> Any:
    """cfn-lint as CI runs it: returns the finished process (returncode, stdout)."""
    return run_cfn_lint


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    doc, errors = decode(str(TEMPLATE))
    assert not errors, errors
    assert doc is not None
    return dict(doc)


@pytest.fixture(scope="session")
def policies() -> dict[str, dict[str, Any]]:
    return {stage: json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text()) for stage in STAGES}


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`chalice package --stage dev --merge-template infra/template.yaml` as infra/deploy.sh's
    environment would run it: (the finished process, the output folder with sam.yaml)."""
    import os

    # Packaging needs a region but no credentials; never let an emulator endpoint leak in.
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # As infra/deploy.sh does: the app's decorators read the stage (queue names, ingest trigger).
    env.update(STAGE="dev", INGEST_TRIGGER="sqs")
    env.pop("INGEST_BUCKET", None)
    chalice = Path(sys.executable).with_name("chalice")
    out = tmp_path_factory.mktemp("package") / "out"
    proc = subprocess.run(
        [str(chalice), "package", "--stage", "dev", "--merge-template", str(TEMPLATE), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return proc, out


@pytest.fixture(scope="session")
def chalice_config() -> dict[str, Any]:
    return dict(json.loads((ROOT / ".chalice" / "config.json").read_text()))
