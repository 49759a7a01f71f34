"""Fixtures for the pipeline's pure tests."""

from __future__ import annotations

import pytest
from pipeline_builders import T0

from chalicelib.media.ladder import TEST_LADDER
from chalicelib.pipeline.assemble import ChannelShape


@pytest.fixture
def shape() -> ChannelShape:
    return ChannelShape(channel_id="news", ladder=TEST_LADDER, segment_duration=2.0, gap_deadline=10.0,
                        availability_start=T0, live_window=30.0, dvr_window=60.0)
