"""The `slipstream` CLI driving the real API handlers (chalice's test client as its transport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from control_harness import API_KEY, Api

from slipstream_cli.__main__ import build_parser, main

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")
BASE = "https://api.example.test/api"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(api: Api, capsys: pytest.CaptureFixture[str]) -> Run:
    def transport(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        assert url.startswith(BASE)
        resp = api.client.http.request(method, url[len(BASE):] or "/", headers=headers, body=body)
        return resp.status_code, resp.body

    def run(*argv: str, key: str = API_KEY) -> tuple[int, str, str]:
        code = main(["--endpoint", BASE, "--api-key", key, *argv], transport=transport)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_operator_flow_create_start_break_status_stop(api: Api, cli: Run) -> None:
    code, out, _ = cli("create", "news", "--name", "News 24", "--segment-duration", "2")
    assert code == 0 and "created" in out and "CREATING" in out
    api.execution.park("news", "IDLE")
    code, out, _ = cli("list")
    assert out.splitlines()[0].split() == ["CHANNEL", "STATE", "NAME", "LADDER"]
    assert out.splitlines()[1].split()[:2] == ["news", "IDLE"]
    code, out, _ = cli("start", "news")
    assert code == 0 and out.strip() == "news: STARTING (the lifecycle moves it to RUNNING)"
    api.execution.run("news")
    code, out, _ = cli("ad-break", "news", "30", "--id", "promo")
    assert code == 0 and out.startswith("ad break promo (splice event 1, splice_insert) 30.0s at")
    code, out, _ = cli("status", "news")
    assert "RUNNING" in out and "none yet" in out
    code, out, _ = cli("--json", "ad-breaks", "news")
    assert json.loads(out)["ad_breaks"][0]["id"] == "promo"
    code, out, _ = cli("end-break", "news", "promo")
    assert out.strip() == "ad break promo: returned"
    code, out, _ = cli("stop", "news")
    assert code == 0 and "STOPPING" in out
    code, out, _ = cli("playback", "news")
    assert urlsplit(out.split()[1]).path == "/news/master.m3u8"


def test_api_errors_are_shown_as_the_api_worded_them_with_exit_1(api: Api, cli: Run) -> None:
    code, out, err = cli("start", "ghost")
    assert code == 1 and out == ""
    assert err.strip() == "slipstream: 404 NotFoundError: channel 'ghost' not found"
    code, _, err = cli("ad-break", "ghost", "-5")
    assert code == 1 and "duration" in err
    code, _, err = cli("list", key="wrong")
    assert code == 1 and "401" in err


def test_given_no_endpoint_then_a_clear_message(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPSTREAM_API_URL", raising=False)
    assert main(["--endpoint", "", "list"]) == 1
    assert "SLIPSTREAM_API_URL" in capsys.readouterr().err


def test_push_subcommand_is_loaded_when_its_module_exists() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"create", "start", "stop", "status", "ad-break"} <= set(sub.choices)  # type: ignore[arg-type]
    try:
        import slipstream_cli.push  # noqa: F401
    except ImportError:
        pytest.skip("push is not installed")
    assert "push" in sub.choices  # type: ignore[operator]
