"""Fixtures for the pipeline's functional tests: moto in-process, real adapters, fake media tools."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from pipeline_harness import ENV, T0, Clock, FakeCdn, FakeTranscoder, Pipeline, fake_probe, fake_render_slate, make_aws

from chalicelib import root
from chalicelib.pipeline import publish, worker
from chalicelib.pipeline.deps import Deps
from chalicelib.pipeline.ingest import idempotency_layer
from chalicelib.pipeline.objects import S3ObjectStore
from chalicelib.pipeline.queues import SqsQueue
from chalicelib.pipeline.store import PipelineStore
from chalicelib.settings import Settings


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    with mock_aws():
        urls = make_aws(monkeypatch)
        clock = Clock(T0)
        transcoder = FakeTranscoder()
        table = boto3.resource("dynamodb").Table(ENV["TABLE_NAME"])
        deps = Deps(
            settings=Settings.from_env(), store=PipelineStore(table), objects=S3ObjectStore(boto3.client("s3")),
            queue=SqsQueue(boto3.client("sqs")), cdn=None, probe=fake_probe, transcode=transcoder, now=clock,
            # Tests own the clock: a packager's wait for a deadline a moment away passes no time (a test
            # that wants it to: deps.sleep = clock.advance).
            render_slate=fake_render_slate, sleep=lambda seconds: None,
        )
        publish.reset_caches()
        worker._INITS.clear()
        deps.extra["idempotency"] = idempotency_layer(ENV["TABLE_NAME"])
        yield Pipeline(deps, boto3.client("s3"), boto3.client("sqs"), table, clock, transcoder, urls)
        root.reset()
        publish.reset_caches()


@pytest.fixture
def cdn(pipe: Pipeline) -> FakeCdn:
    fake = FakeCdn()
    pipe.deps.cdn = fake
    return fake
