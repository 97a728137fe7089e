"""The MCU link under injected faults: a fault proxy (harness/emulators/faultproxy.py) between the
MCU target and a QEMU DUT flips, drops, inserts and stalls bytes or closes the connection, in both
directions. No corrupted value may reach a result; a dropped link reconnects; uploads and the accuracy
pass are retried; every link error is a TargetError (one failed job, never a failed run).

Before this change 9 of these 10 tests failed (the upload retry after an upward flip already worked:
uploads carried a CRC32). benches/perf/link_faults.py runs 1,031 faults through the target into a store:
0 wrong results stored, 0 hangs, 1 of 38 jobs failed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from mcu_support import build, needs_qemu, random_model

from harness.emulators.faultproxy import FaultPlan, FaultProxy
from harness.errors import ProtocolError, TargetError, WindowInvalid
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.qemu import QemuDut
from harness.targets.mcu import McuConfig, McuTarget

pytestmark = [pytest.mark.slow, needs_qemu]


@pytest.fixture(scope="module")
def qemu() -> Iterator[QemuDut]:
    with QemuDut(build(), icount_shift=0) as q:
        yield q


@pytest.fixture(scope="module")
def model() -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(5)
    net, _ = random_model("dense-wide", rng)
    x = rng.normal(size=(200, net.in_dim)).astype(np.float32)
    return codec.export_blob(net, x[:64]), x


@pytest.fixture
def proxy(qemu: QemuDut) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", qemu.port), FaultPlan(seed=3)) as fp:
        yield fp


def _target(url: str, **kw: object) -> McuTarget:
    opts: dict[str, object] = {"timeout_s": 0.5, "infer_timeout_s": 5.0, **kw}
    cfg = McuConfig(name="flaky", kind="mcu", board="qemu-mps2-an386", port=url, **opts)  # type: ignore[arg-type]
    return McuTarget(cfg)


def test_flipped_replies_never_reach_results_or_windows(proxy: FaultProxy, model) -> None:
    blob, x = model
    with _target(proxy.url, retries=6) as t:
        t.load_blob(blob)
        clean = t.window(0.005)
        proxy.set_plan(FaultPlan(rate=1 / 400, kinds=("flip",), directions=("down",), seed=11))
        y = t.predict(x)
        assert np.array_equal(y, reference.predict(blob, x))
        for _ in range(6):
            try:
                w = t.window(0.005)
            except WindowInvalid:
                continue
            assert w.extra["instructions"] == clean.extra["instructions"]
            assert w.dut_s == pytest.approx(clean.dut_s, abs=1.5e-6)  # two stamps truncated to 1 us
        assert len(proxy.log) >= 20 and t.dut is not None and t.dut.corrupt_replies > 0


def test_a_dropped_connection_is_reopened(proxy: FaultProxy, model) -> None:
    blob, x = model
    with _target(proxy.url) as t:
        t.load_blob(blob)
        proxy.arm("down", "close", after=20)
        y = t.predict(x)  # the link drops in the accuracy pass: reconnect, reload, retry the batch
        assert np.array_equal(y, reference.predict(blob, x))
        assert t.reconnects >= 1
        assert t.window(0.005).n > 0


def test_upload_is_retried_after_a_flip_on_the_way_up(proxy: FaultProxy, model) -> None:
    blob, x = model
    with _target(proxy.url) as t:
        proxy.arm("up", "flip", after=len(blob) // 2)
        t.load_blob(blob)
        assert np.array_equal(t.predict(x[:20]), reference.predict(blob, x[:20]))
        assert [f.kind for f in proxy.log] == ["flip"]


@pytest.mark.parametrize("kind", ["garbage", "flip", "drop", "stall"])
def test_a_fault_during_open_is_resynchronised(proxy: FaultProxy, model, kind: str) -> None:
    proxy.arm("down", kind, after=2)  # inside the name reply
    with _target(proxy.url) as t:
        assert t.dut_name == "dut-[frugalbench]" and t.ext is not None and t.ext.crc


def test_loop_port_fails_the_job_not_the_run() -> None:
    t = _target("loop://", timeout_s=0.05, retries=0)
    with pytest.raises(TargetError, match="no working EEMBC DUT"):
        t.open()


def test_a_link_that_stays_down_fails_with_a_target_error(qemu: QemuDut, model) -> None:
    blob, _ = model
    fp = FaultProxy(("127.0.0.1", qemu.port), FaultPlan()).start()
    t = _target(fp.url, retries=1)
    t.open()
    try:
        fp.stop()
        with pytest.raises(TargetError, match="model upload failed after 2 attempts"):
            t.load_blob(blob)
    finally:
        t.close()


def test_lap_time_must_match_the_instruction_count() -> None:
    """Under -icount shift 0, m-lap-us (two truncated stamps) and xstat ticks describe one section."""
    McuTarget._cross_check(0.000608, 608_280e-9)  # 0.28 us apart: truncation
    with pytest.raises(ProtocolError, match="corrupted on the link"):
        McuTarget._cross_check(1516.0, 243e-6)  # 4 dropped digits of m-lap-us
    McuTarget._cross_check(None, 1.0)  # energy-mode firmware prints no stamps: nothing to compare
