"""Fixtures for the emulator's own tests: the walking-skeleton app deployed to the session's endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.localaws.deploy import Deployment, deploy

SKELETON_DIR = Path(__file__).resolve().parent / "skeleton_app"


@pytest.fixture(scope="session")
def skeleton(aws: dict[str, str]) -> Deployment:
    return deploy(SKELETON_DIR, stage="local", endpoint=aws["AWS_ENDPOINT_URL"])


@pytest.fixture(scope="session")
def record(skeleton: Deployment, boto: Callable[[str], Any]) -> Callable[[str], dict[str, Any] | None]:
    """record(pk) -> the item a skeleton handler wrote under pk (attribute values unwrapped), or None."""
    ddb = boto("dynamodb")

    def get(pk: str) -> dict[str, Any] | None:
        item = ddb.get_item(TableName=skeleton.table_name, Key={"pk": {"S": pk}, "sk": {"S": "RUN"}}).get("Item")
        return None if item is None else {k: next(iter(v.values())) for k, v in item.items()}

    return get
