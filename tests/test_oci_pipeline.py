from __future__ import annotations

import io

import pytest

from strata.oci.pipeline import BackgroundSink


def test_writes_arrive_in_order_and_buffers_may_be_reused() -> None:
    out = io.BytesIO()
    buf = bytearray(b"a" * 10)
    with BackgroundSink(out, depth=2) as sink:
        for i in range(100):
            buf[:] = bytes([65 + i % 26]) * 10
            sink.write(buf)
    assert out.getvalue() == b"".join(bytes([65 + i % 26]) * 10 for i in range(100))


def test_a_failing_sink_surfaces_its_error() -> None:
    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    sink = BackgroundSink(Full())
    with pytest.raises(OSError, match="No space left"):
        for _ in range(100):
            sink.write(b"x" * 1000)
        sink.close()
