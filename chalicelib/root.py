"""The one composition root: lazy, cached factories. No module-level boto3 clients.

boto3 honours AWS_ENDPOINT_URL, so the same code talks to AWS, moto or LocalStack.
Each area adds the factories for its own services in its own section below.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .settings import Settings


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def client(service: str) -> Any:
    import boto3  # imported lazily: the pure core and cold paths never pay for it

    return boto3.client(service)


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    settings.cache_clear()
    client.cache_clear()
    for f in _RESETTABLE:
        f.cache_clear()


_RESETTABLE: list[Any] = []


def resettable(f: Any) -> Any:
    """Register a cached factory so `reset()` clears it too."""
    _RESETTABLE.append(f)
    return f


# --- pipeline factories (chalicelib/pipeline) ---

# --- control factories (chalicelib/control) ---
