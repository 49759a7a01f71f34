"""The media core stays pure: no AWS SDK, no environment, no I/O clients (DESIGN.md rule 2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import chalicelib.media

MEDIA = Path(chalicelib.media.__file__).parent
MODULES = sorted(MEDIA.glob("*.py"))
FORBIDDEN_IMPORTS = ("boto3", "botocore", "aiobotocore", "s3transfer", "chalice", "aws_lambda_powertools")


def violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.module == "os":
                names += [f"os.{a.name}" for a in node.names]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in FORBIDDEN_IMPORTS or name in ("os.environ", "os.getenv", "os.putenv"):
                found.append(f"line {line}: imports {name}")
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            found.append(f"line {line}: reads .{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append(f"line {line}: opens a file")
    return found


def test_the_scan_itself_catches_what_it_forbids() -> None:
    bad = "import boto3\nfrom os import environ\nimport os\nx = os.environ['A']\ny = os.getenv('B')\nopen('f')\n"
    assert len(violations(ast.parse(bad))) == 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_media_module_imports_no_aws_and_reads_no_environment(path: Path) -> None:
    assert violations(ast.parse(path.read_text(), str(path))) == []


def test_media_package_imports_with_the_aws_sdk_unavailable() -> None:
    """Nothing reaches boto3 transitively either: import every module with the SDK blocked."""
    names = [f"chalicelib.media.{p.stem}" for p in MODULES if p.stem != "__init__"]
    code = (
        "import sys\n"
        "for m in ('boto3', 'botocore'): sys.modules[m] = None\n"
        f"import importlib\nfor n in {names!r}: importlib.import_module(n)\n"
        "print('ok')\n"
    )
    root = MEDIA.parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
