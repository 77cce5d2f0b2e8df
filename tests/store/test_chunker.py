"""The chunker cuts by content: the same bytes give the same chunks wherever they sit."""

from __future__ import annotations

import io
import random

from strata_store.chunker import MAX_SIZE, MIN_SIZE, chunk_bytes, iter_chunks


def _data(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def test_streaming_chunks_equal_whole_buffer_chunks_for_any_window():
    data = _data(3_000_000)
    whole = chunk_bytes(data)
    for window in (MAX_SIZE, MAX_SIZE + 1, 300_001, 1 << 20):
        assert list(iter_chunks(io.BytesIO(data), window_size=window)) == whole
    assert b"".join(whole) == data


def test_chunk_sizes_stay_within_bounds():
    chunks = chunk_bytes(_data(5_000_000, seed=2))
    assert all(MIN_SIZE <= len(chunk) <= MAX_SIZE for chunk in chunks[:-1])
    average = sum(map(len, chunks)) / len(chunks)
    assert 16_000 < average < 64_000


def test_an_insertion_changes_only_the_chunks_around_it():
    data = _data(4_000_000, seed=3)
    edited = data[:2_000_000] + b"inserted bytes" + data[2_000_000:]
    before, after = set(chunk_bytes(data)), chunk_bytes(edited)
    new = [chunk for chunk in after if chunk not in before]
    assert sum(map(len, new)) <= 2 * MAX_SIZE


def test_empty_and_tiny_inputs():
    assert chunk_bytes(b"") == []
    assert chunk_bytes(b"x") == [b"x"]


class _Trickle(io.RawIOBase):
    """A stream that hands out at most `most` bytes per read, as a pipe might."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data, self._most, self._at = data, most, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self._most, len(self._data) - self._at)
        buffer[:size] = self._data[self._at : self._at + size]
        self._at += size
        return size


def test_short_reads_and_views_give_the_chunks_of_the_whole_buffer():
    from fastcdc.fastcdc_cy import chunk_generator

    from strata_store.chunker import AVG_SIZE, iter_chunk_batches

    data = _data(2_500_000, seed=4)
    reference = [
        data[c.offset : c.offset + c.length]
        for c in chunk_generator(memoryview(data), MIN_SIZE, AVG_SIZE, MAX_SIZE, False, None)
    ]
    views = [
        view
        for batch in iter_chunk_batches(_Trickle(data, 100_003), window_size=MAX_SIZE + 7, copy=False)
        for view in batch
    ]
    # Every view is read only after the whole stream was: no window was reused.
    assert [bytes(view) for view in views] == reference
    assert list(iter_chunks(_Trickle(data, 4096), window_size=MAX_SIZE * 2)) == reference
