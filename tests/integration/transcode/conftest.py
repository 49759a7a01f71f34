"""Session fixture: the 30 s synthetic channel, every chunk transcoded by its own job."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from transcode_source import CHUNK_SECONDS, SOURCE_SECONDS, Channel, make_chunks

from chalicelib.transcode import TranscodeResult, run


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channel]:
    root = tmp_path_factory.mktemp("transcode-channel")
    chunks = make_chunks(root / "ingest")
    assert len(chunks) == SOURCE_SECONDS // CHUNK_SECONDS
    ch = Channel(chunks, {}, root)
    order = list(range(len(chunks)))
    random.Random(4).shuffle(order)  # out of order, as SQS delivers them

    def one(seq: int) -> TranscodeResult:
        return run(ch.job(seq, root / "out" / f"{seq:05d}"))

    with ThreadPoolExecutor(max_workers=2) as pool:  # two at once, like two Lambdas
        for seq, result in zip(order, pool.map(one, order), strict=True):
            ch.results[seq] = result
    yield ch
