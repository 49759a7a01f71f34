"""ASL definitions and the ONE dict that fills their `${Substitutions}`.

Numbers are substituted into strings and turned into numbers inside the ASL with
States.StringToJson, so every .asl.json file stays valid JSON before substitution.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ValidationError

STATEMACHINES = Path(__file__).resolve().parents[2] / "statemachines"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

# Watchdog defaults: a tick every 10 s; a gap after 3 missed 2 s segments; stop after 10 minutes.
# 1000 ticks (~17 history events each) stay under Step Functions' 25,000-event history limit.
DEFAULTS = {"watchdog_interval": 10, "input_gap": 6, "input_loss_stop": 600, "rollover_ticks": 1000}


def substitutions(
    lifecycle_function_arn: str,
    *,
    watchdog_interval: int = DEFAULTS["watchdog_interval"],
    input_gap: int = DEFAULTS["input_gap"],
    input_loss_stop: int = DEFAULTS["input_loss_stop"],
    rollover_ticks: int = DEFAULTS["rollover_ticks"],
) -> dict[str, str]:
    """Every placeholder of every statemachines/*.asl.json, validated (a unit test checks coverage)."""
    if not lifecycle_function_arn.startswith("arn:"):
        raise ValidationError(f"lifecycle function ARN {lifecycle_function_arn!r} is not an ARN")
    for name, value, lo, hi in (
        ("watchdog_interval", watchdog_interval, 1, 3600),
        ("input_gap", input_gap, 1, 3600),
        ("input_loss_stop", input_loss_stop, 10, 86400),
        ("rollover_ticks", rollover_ticks, 10, 1400),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValidationError(f"{name}={value!r} outside [{lo}, {hi}]")
    if input_loss_stop <= input_gap:
        raise ValidationError("input_loss_stop must be longer than input_gap")
    return {
        "LifecycleFunctionArn": lifecycle_function_arn,
        "WatchdogIntervalSeconds": str(watchdog_interval),
        "InputGapSeconds": str(input_gap),
        "InputLossStopSeconds": str(input_loss_stop),
        "RolloverTicks": str(rollover_ticks),
    }


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(name: str, subs: Mapping[str, str]) -> str:
    """The definition text of statemachines/{name}.asl.json with every placeholder filled."""
    text = (STATEMACHINES / f"{name}.asl.json").read_text()
    missing = placeholders(text) - subs.keys()
    if missing:
        raise ValidationError(f"{name}.asl.json needs substitutions for {sorted(missing)}")
    out = PLACEHOLDER.sub(lambda m: subs[m.group(1)], text)
    json.loads(out)  # a substitution must never break the JSON
    return out


def load(name: str, subs: Mapping[str, str]) -> dict[str, Any]:
    return dict(json.loads(render(name, subs)))
