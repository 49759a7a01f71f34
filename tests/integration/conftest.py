"""Shared integration fixtures: an AWS endpoint (built-in emulator or LocalStack) and the deployed app.

The suite talks to AWS only through AWS_ENDPOINT_URL (and boto3's per-service AWS_ENDPOINT_URL_<SERVICE>),
so the same tests run against:
- the built-in emulator (default): `devtools.localaws.LocalAWS`, started once per xdist worker on a
  free loopback port, so parallel workers never share state;
- LocalStack (`SLIPSTREAM_AWS=localstack`): started here as a host process on a free loopback port
  (no Docker; `make localstack-venv` builds its Python 3.13 venv with the project's Lambda executor),
  with DynamoDB and CloudFront on the built-in emulator (LocalStack community has no offline
  DynamoDB and no CloudFront); the session header says which service ran where. Skipped, saying so,
  only when Python 3.13 is missing. With LOCALSTACK_ENDPOINT set, an already running LocalStack
  (Docker: `docker compose -f infra/localstack/docker-compose.yml up -d`) serves every service instead.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) must find devtools too
    sys.path.insert(0, str(REPO_ROOT))

from devtools.localaws import LocalAWS  # noqa: E402
from devtools.localaws.deploy import Deployment, deploy, endpoint_for  # noqa: E402
from devtools.localaws.deploy import wait_for as _wait_for  # noqa: E402
from devtools.localstack_executor.launcher import (  # noqa: E402
    BUILT_IN_SERVICES,
    SERVICES,
    LocalStackError,
    LocalStackSession,
    python313,
    venv_problem,
)
from devtools.localstack_executor.launcher import default_venv as _localstack_venv  # noqa: E402


def _external_localstack(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=3) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(
            f"LOCALSTACK_ENDPOINT={endpoint} but no LocalStack answers there ({exc}); start it with "
            "`docker compose -f infra/localstack/docker-compose.yml up -d`, or unset LOCALSTACK_ENDPOINT "
            "to run LocalStack as a host process"
        )
    return endpoint


def _host_localstack(state_dir: Path) -> LocalStackSession:
    """LocalStack as a host process, plus the built-in emulator for DynamoDB and CloudFront."""
    if python313() is None and not (_localstack_venv() / "bin" / "python").exists():
        pytest.skip(f"LocalStack run skipped: {venv_problem(_localstack_venv())}")
    problem = venv_problem(_localstack_venv())
    if problem:  # Python 3.13 is there, so this is a setup step missing, not a reason to skip
        pytest.exit(f"SLIPSTREAM_AWS=localstack: {problem}", returncode=1)
    session = LocalStackSession(state_dir)
    try:
        session.start()
    except LocalStackError as exc:  # exited, or not healthy in 30 s: stop the run with its last log lines
        pytest.exit(f"SLIPSTREAM_AWS=localstack: {exc}", returncode=1)
    return session


# The env the session's AWS fixtures set. It is in os.environ while tests under tests/integration run
# (module-scoped fixtures included) and taken out when the next test lives elsewhere: an xdist worker
# also runs functional tests, whose `mock_aws` would otherwise send boto3 to the live emulator.
_ACTIVE_ENV: dict[str, str] = {}
_SAVED_ENV: dict[str, str | None] = {}


def _apply(env: dict[str, str]) -> None:
    for k in env:
        _SAVED_ENV.setdefault(k, os.environ.get(k))
    _ACTIVE_ENV.update(env)
    os.environ.update(env)


def _withdraw() -> None:
    for k, v in _SAVED_ENV.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so `-p no:xdist` runs do not trip --strict-markers on xdist_group.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one xdist worker")


# Real-time tests: a live schedule against the wall clock, real players, or a channel measured over
# minutes. They must not share the 2 cores with the parallel suite (`make test` runs them alone after it).
# Not here: the demo server's routing tests (HTTP only) and the media continuity test (its chunks are
# uploaded as fast as they go and never slated; what it measures is the decoded media, not when it came).
REALTIME = ("browser/test_player.py", "browser/test_player_ll.py", "browser/test_scte35_players.py",
            "pipeline/test_pipeline_live.py", "pipeline/test_scte35_source.py", "pipeline/test_llhls_live.py",
            "soak/", "deploy/", "test_lifecycle_e2e.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.path))
        if here not in path.parents:
            continue
        rel = path.relative_to(here).as_posix()
        if any(rel.startswith(p) or rel == p for p in REALTIME):
            item.add_marker(pytest.mark.realtime)


def _on_localstack() -> bool:
    return os.environ.get("SLIPSTREAM_AWS", "").lower() == "localstack"


def pytest_report_header(config: pytest.Config) -> str | None:
    if not _on_localstack():
        return None
    if os.environ.get("LOCALSTACK_ENDPOINT"):
        return f"aws: LocalStack at {os.environ['LOCALSTACK_ENDPOINT']} (external) for every service"
    return (f"aws: LocalStack (host process, no Docker) for {', '.join(SERVICES)}; "
            f"the built-in emulator for {', '.join(BUILT_IN_SERVICES)}")


_STARTED: list[str] = []  # what the `aws` fixture started, for the terminal summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STARTED:
        terminalreporter.write_sep("-", "AWS endpoints")
        for line in _STARTED:
            terminalreporter.write_line(line)


def pytest_runtest_setup(item: pytest.Item) -> None:
    os.environ.update(_ACTIVE_ENV)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Only called for items in this directory; nextitem tells whether the worker leaves it.
    if nextitem is None or Path(__file__).parent not in Path(str(nextitem.path)).parents:
        _withdraw()


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The AWS environment for boto3 (endpoints, region, dummy keys), also put in os.environ.

    With the built-in emulator, `aws_server` is the LocalAWS object; with a host LocalStack,
    `localstack` is the LocalStackSession.
    """
    server: LocalAWS | None = None
    session: LocalStackSession | None = None
    if _on_localstack():
        external = os.environ.get("LOCALSTACK_ENDPOINT", "")
        if external:
            env = {
                "AWS_ENDPOINT_URL": _external_localstack(external),
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
            }
            _STARTED.append(f"LocalStack at {env['AWS_ENDPOINT_URL']} (external): every service")
        else:
            session = _host_localstack(tmp_path_factory.mktemp("localstack"))
            _STARTED.append(session.describe())
            env = session.env()
    else:
        server = LocalAWS(state_dir=tmp_path_factory.mktemp("localaws"))
        server.start()
        print(f"\nLocalAWS ready at {server.endpoint} in {server.start_seconds:.2f} s")
        env = server.env()
    _apply(env)
    _SERVERS[os.getpid()] = server
    _SESSIONS[os.getpid()] = session
    try:
        yield env
    finally:
        _SERVERS.pop(os.getpid(), None)
        _SESSIONS.pop(os.getpid(), None)
        if server is not None:
            server.stop()
        if session is not None:
            session.stop()
        _withdraw()
        _ACTIVE_ENV.clear()


_SERVERS: dict[int, LocalAWS | None] = {}
_SESSIONS: dict[int, LocalStackSession | None] = {}


@pytest.fixture(scope="session")
def localstack(request: pytest.FixtureRequest) -> LocalStackSession:
    """The host LocalStack session (processes, endpoints, version); skips on the built-in emulator."""
    if not _on_localstack() or os.environ.get("LOCALSTACK_ENDPOINT"):
        pytest.skip("needs SLIPSTREAM_AWS=localstack with a host LocalStack (the LocalStack stage: make localstack)")
    request.getfixturevalue("aws")
    session = _SESSIONS.get(os.getpid())
    assert session is not None
    return session


@pytest.fixture(scope="session")
def aws_server(aws: dict[str, str]) -> LocalAWS:
    """The built-in emulator running everything (for log files, pids); skips under LocalStack."""
    server = _SERVERS.get(os.getpid())
    if server is None:
        pytest.skip("needs the built-in emulator (LocalStack has no local log files or process ids)")
    return server


@pytest.fixture(scope="session")
def deployed(aws: dict[str, str]) -> Deployment:
    """Slipstream itself, deployed from the repo root to stage `local`; `dep.env()` goes to os.environ.

    Code under test that caches boto3 clients (chalicelib.root) should be reset by the test.
    """
    dep = deploy(REPO_ROOT, stage="local", endpoint=aws["AWS_ENDPOINT_URL"])
    _apply(dep.env())
    return dep


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., Any]:
    """wait_for(predicate, timeout=30, interval=0.2, what="...") -> the first truthy value."""
    return _wait_for


@pytest.fixture(scope="session")
def boto(aws: dict[str, str]) -> Callable[[str], Any]:
    """boto(service) -> a client bound to the session's endpoint (independent of later env changes)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    )
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=endpoint_for(service, aws))
        return clients[service]

    return client
