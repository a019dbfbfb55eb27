"""The downloads' MD5 (xnat/md5.py and the _md5lanes kernel) must be hashlib's MD5."""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.compiler import can_compile
from tests.fixtures.md5_lanes import lanes_per_call as spy_lanes
from xnat_tui.xnat import download_ops, md5

try:
    from xnat_tui.xnat import _md5lanes
except ImportError:  # not compiled here; test_extension_is_built says whether it must be
    _md5lanes = None  # type: ignore[assignment]

LEVEL = 0 if _md5lanes is None else _md5lanes.level()
needs_kernel = pytest.mark.skipif(LEVEL == 0, reason="no _md5lanes kernel for this CPU")
IV = struct.pack("<4I", 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)


def test_extension_is_built() -> None:
    """Where it can be compiled, it must be: CI must not silently lose the fast MD5."""
    if not can_compile():
        pytest.skip("no Python.h or C compiler: hashlib is the expected MD5")
    assert _md5lanes is not None, "pip install -e . should have compiled _md5lanes.c"


def _padded(data: bytes) -> bytes:
    pad = (55 - len(data)) % 64
    return data + b"\x80" + bytes(pad) + struct.pack("<Q", len(data) * 8)


@needs_kernel
@pytest.mark.parametrize("level", [1, 2])
def test_each_kernel_gives_md5_in_every_lane(level: int) -> None:
    if level > LEVEL:
        pytest.skip("this CPU has no AVX-512VL")
    rng = random.Random(level)
    for lanes in range(1, 9):
        # Equal padded lengths per call: the kernel runs one count for all its lanes.
        size = rng.choice([0, 1, 55, 56, 63, 64, 65, 119, 1000, 4096 + 7])
        datas = [rng.randbytes(size) for _ in range(lanes)]
        padded = [_padded(d) for d in datas]
        states = [bytearray(IV) for _ in datas]
        _md5lanes.compress(states, padded, len(padded[0]) // 64, level)
        assert [bytes(s).hex() for s in states] == [hashlib.md5(d).hexdigest() for d in datas]


@needs_kernel
def test_the_kernel_refuses_what_it_cannot_do() -> None:
    state, block = bytearray(IV), bytes(64)
    with pytest.raises(ValueError):
        _md5lanes.compress([], [], 1)
    with pytest.raises(ValueError):
        _md5lanes.compress([bytearray(IV) for _ in range(9)], [block] * 9, 1)
    with pytest.raises(ValueError, match="short"):
        _md5lanes.compress([state], [block], 2)  # two blocks asked of one
    with pytest.raises(ValueError, match="short"):
        _md5lanes.compress([bytearray(15)], [block], 1)
    with pytest.raises(BufferError):
        _md5lanes.compress([bytes(IV)], [block], 1)  # a state it cannot write
    with pytest.raises(ValueError, match="kernel"):
        _md5lanes.compress([state], [block], 1, LEVEL + 1)
    assert state == bytearray(IV), "nothing was hashed by a refused call"


def _pieces(rng: random.Random, data: bytes) -> Iterator[memoryview]:
    """``data`` cut at random places, some pieces empty, some shorter than a block."""
    view, at = memoryview(data), 0
    while at < len(data):
        n = rng.choice([0, 1, 63, 64, 65, 4096, 65536 + 3, rng.randrange(1, 300_000)])
        yield view[at : at + n]
        at += n


@needs_kernel
def test_many_threads_at_once_each_get_their_own_files_md5() -> None:
    """Eight worker threads' files share the batch; each digest is hashlib's."""
    rng = random.Random(7)
    files = [
        rng.randbytes(rng.choice([0, 1, 64, 100_000, 1 << 20, (3 << 20) + 5])) for _ in range(40)
    ]
    got: dict[int, str] = {}
    lock = threading.Lock()

    def worker(indexes: list[int], seed: int) -> None:
        wrng = random.Random(seed)
        for i in indexes:
            h = md5.Md5()
            for piece in _pieces(wrng, files[i]):
                if wrng.random() < 0.5:
                    h.update_later(piece)
                else:
                    h.update(piece)
            with lock:
                got[i] = h.hexdigest()

    threads = [threading.Thread(target=worker, args=(list(range(t, 40, 8)), t)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {i: hashlib.md5(f).hexdigest() for i, f in enumerate(files)}


@needs_kernel
def test_bytes_queued_for_later_are_all_hashed_once_settled() -> None:
    """A download reuses its buffer after settle(): what it writes there then must not
    reach the digest, and every byte before must."""
    buf = mmap.mmap(-1, 1 << 20)
    view = memoryview(buf)
    rng = random.Random(3)
    h, whole = md5.Md5(), b""
    for _ in range(3):
        data = rng.randbytes(1 << 20)
        view[:] = data
        for at in range(0, 1 << 20, 256 << 10):
            h.update_later(view[at : at + (256 << 10)])
        h.settle()
        whole += data
    view[:] = bytes(1 << 20)  # the buffer filled again, after the last settle
    assert h.hexdigest() == hashlib.md5(whole).hexdigest()
    view.release()
    buf.close()


@needs_kernel
def test_streams_queued_meanwhile_share_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the batch: when one stream needs its digest, the others queued by
    then are hashed in the same kernel calls (lanes filled), not one after another."""
    lanes_per_call = spy_lanes(monkeypatch)
    datas = [bytes([i]) * (256 << 10) for i in range(8)]
    hashes = [md5.Md5() for _ in datas]
    for h, d in zip(hashes, datas, strict=True):
        h.update_later(d)
    hashes[0].settle()  # the one that needs it runs the batch, for all eight
    assert lanes_per_call and set(lanes_per_call) == {8}
    lanes_per_call.clear()
    assert [h.hexdigest() for h in hashes] == [hashlib.md5(d).hexdigest() for d in datas]
    assert set(lanes_per_call) == {1}, "only each digest's padding block was left"


def test_new_gives_hashlib_where_lanes_would_not_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    one = md5.new(streams=1)
    one.update_later(b"abc")
    one.settle()
    assert one.hexdigest() == hashlib.md5(b"abc").hexdigest()
    assert not isinstance(one, md5.Md5), "one file at a time: hashlib is faster than one lane"
    if LEVEL:
        assert isinstance(md5.new(streams=8), md5.Md5)
    monkeypatch.setenv("XNAT_TUI_PURE_MD5", "1")
    assert not md5.lanes_usable()


@pytest.mark.parametrize("streams", [1, 8])
def test_the_verifier_refuses_a_wrong_md5_either_way(streams: int) -> None:
    data = os.urandom(300_000)
    good = download_ops.Verifier(
        "a.dcm", size=len(data), digest=hashlib.md5(data).hexdigest(), streams=streams
    )
    bad = download_ops.Verifier(
        "a.dcm", size=len(data), digest=hashlib.md5(data[:-1]).hexdigest(), streams=streams
    )
    for check in (good, bad):
        view = memoryview(data)
        check.feed(view[:70_001], hash=False)
        check.feed(view[70_001:], hash=False)
        check.hash_later(view[:70_016])  # runs of any length, in order
        check.hash_later(view[70_016:])
    assert good.finish() == hashlib.md5(data).hexdigest()
    with pytest.raises(download_ops.IntegrityError, match="does not match"):
        bad.finish()


@needs_kernel
def test_a_failing_batch_fails_every_waiting_thread_and_hangs_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel never fails on what md5.py hands it; were it to, no thread may sleep
    forever on a batch that died."""
    real = md5._KERNEL
    calls = 0
    started = threading.Barrier(8)

    class Failing:
        def compress(self, states: list[bytearray], blocks: list[Any], count: int) -> None:
            nonlocal calls
            calls += 1
            if len(states) > 1 or calls > 3:
                raise MemoryError("the kernel failed")
            real.compress(states, blocks, count)

    monkeypatch.setattr(md5, "_KERNEL", Failing())
    outcome: dict[int, str] = {}

    def worker(i: int) -> None:
        h = md5.Md5()
        started.wait()
        try:
            for _ in range(4):
                h.update_later(bytes(256 << 10))
                h.settle()
            outcome[i] = "hashed"
        except MemoryError:
            outcome[i] = "failed"

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not [t for t in threads if t.is_alive()], "a thread sleeps on a dead batch"
    assert "failed" in outcome.values() and len(outcome) == 8
