"""Pure rules of the emulator and deployer (no server): fast, so they run in every suite."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from devtools.localaws.deploy import DeployError, load_stage_config, package, render_asl
from devtools.localaws.patches import _batch_item_failures

IDS = {"a", "b", "c"}


@pytest.mark.parametrize(
    ("payload", "failed"),
    [
        (json.dumps({"batchItemFailures": []}), set()),
        (json.dumps({"batchItemFailures": [{"itemIdentifier": "b"}]}), {"b"}),
        (json.dumps(None), set()),  # a handler returning nothing: the whole batch succeeded
        (json.dumps({"batchItemFailures": [{"itemIdentifier": "zzz"}]}), IDS),  # unknown id: all fail
        (json.dumps({"batchItemFailures": [{"itemIdentifier": ""}]}), IDS),  # empty id: all fail
        (json.dumps({"batchItemFailures": "b"}), IDS),  # malformed: all fail
        ("not json", IDS),
    ],
)
def test_batch_item_failures_follow_lambdas_rules(payload: str, failed: set[str]) -> None:
    assert _batch_item_failures(payload, IDS) == failed


def test_render_asl_fills_every_placeholder_and_names_the_missing_ones() -> None:
    text = '{"Resource": "${FnArn}", "Comment": "${Stage}"}'
    assert json.loads(render_asl(text, {"FnArn": "arn:x", "Stage": "local"})) == {
        "Resource": "arn:x", "Comment": "local"}
    with pytest.raises(DeployError, match=r"channel.asl.json: no value for placeholder\(s\) Stage"):
        render_asl(text, {"FnArn": "arn:x"}, source="channel.asl.json")


def test_render_asl_refuses_a_substitution_that_breaks_the_json() -> None:
    with pytest.raises(ValueError):
        render_asl('{"a": "${X}"}', {"X": 'quote"breaks'})


def test_package_ships_what_chalice_ships_and_is_byte_identical_across_runs(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "chalicelib" / "__pycache__").mkdir(parents=True)
    (tmp_path / "chalicelib" / "__init__.py").write_text("")
    (tmp_path / "chalicelib" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    first = package(tmp_path)
    names = zipfile.ZipFile(BytesIO(first)).namelist()
    assert names == ["app.py", "chalicelib/__init__.py"]
    assert package(tmp_path) == first


def test_stage_config_merges_top_level_stage_and_errors_on_unknown_stage(tmp_path: Path) -> None:
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "app_name": "x", "environment_variables": {"A": "top", "B": "top"}, "lambda_timeout": 30,
        "stages": {"local": {"environment_variables": {"B": "stage"},
                             "lambda_functions": {"f": {"lambda_timeout": 5}}}},
    }))
    cfg = load_stage_config(tmp_path, "local")
    assert cfg["env"] == {"A": "top", "B": "stage"}
    assert cfg["timeout"] == 30
    assert cfg["lambda_functions"]["f"]["lambda_timeout"] == 5
    with pytest.raises(DeployError, match="stage 'prod' not in"):
        load_stage_config(tmp_path, "prod")

