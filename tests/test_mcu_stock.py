"""A stock DUT (model built in, no extension negotiated) measured with the plain EEMBC commands, and
``frugalbench dut check`` on the QEMU firmware."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mcu_support import needs_qemu, random_model
from typer.testing import CliRunner

from harness.cli.dut import dut_app
from harness.emulators.iomanager import IoManagerEmulator
from harness.errors import TargetError
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.build import build_firmware
from harness.mcu.check import check_dut
from harness.mcu.qemu import QemuDut
from harness.targets.mcu import McuConfig, McuTarget

pytestmark = [pytest.mark.slow, needs_qemu]


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, np.ndarray]:
    """Our firmware with a model built into flash (MODEL_BLOB=), its blob and evaluation inputs."""
    rng = np.random.default_rng(5)
    net, _ = random_model("dense", rng)
    x = rng.normal(size=(40, net.in_dim)).astype(np.float32)
    blob = codec.export_blob(net, x, head="softmax", model_id="ic01")
    path = tmp_path_factory.mktemp("stock") / "m.blob"
    path.write_bytes(blob)
    return build_firmware("qemu-mps2-an386", model_blob=path), blob, x


@pytest.fixture(scope="module")
def target(stock: tuple[Path, bytes, np.ndarray]) -> Iterator[McuTarget]:
    elf, _, _ = stock
    t = McuTarget(
        McuConfig(name="stock", kind="mcu", board="qemu-mps2-an386", firmware=str(elf), extensions=False)
    )
    with t:
        yield t


def test_stock_dut_is_measured_with_plain_eembc(
    target: McuTarget, stock: tuple[Path, bytes, np.ndarray]
) -> None:
    _, blob, x = stock
    target.load_blob(blob)  # no upload: the DUT runs the model it was built with
    assert target.ext is None and "plain" in target.info()["protocol"]
    y = target.predict(x)  # hex input per row, infer 1 0, m-results floats
    qm = codec.read_blob(blob)
    want = np.stack([reference.results_vector(qm, o) for o in reference.run(qm, qm.quantize_input(x))])
    assert np.allclose(y, want, atol=2e-3)
    assert (y.argmax(1) == want.argmax(1)).all()
    w = target.window(0.02)
    assert w.n > 1 and w.dut_s > 0 and w.latencies_s[0] == pytest.approx(w.dut_s / w.n)


def test_stock_dut_refuses_a_variant_it_was_not_built_with(
    target: McuTarget, stock: tuple[Path, bytes, np.ndarray]
) -> None:
    _, _, x = stock
    net, _ = random_model("dense", np.random.default_rng(6))
    other = codec.export_blob(net, np.random.default_rng(6).normal(size=(8, net.in_dim)).astype(np.float32),
                              model_id="kws01")  # fmt: skip
    with pytest.raises(TargetError, match="runs model 'ic01', not this variant's 'kws01'"):
        target.load_blob(other)


def test_dut_check_reports_one_dut(stock: tuple[Path, bytes, np.ndarray]) -> None:
    elf, _, _ = stock
    with QemuDut(elf) as q:
        r = check_dut(q.url, gap_s=0.3)
        assert r.ok, r.lines()
        assert r.name == "dut-[frugalbench]" and r.model == "ic01"
        assert (
            r.extensions is not None and "model" in r.extensions.bulk and r.extensions.tick_hz == 25_000_000
        )
        assert r.clock_ratio is not None
        res = CliRunner().invoke(dut_app, ["check", q.url])
        assert res.exit_code == 0, res.output
        assert "ready" in res.output and "extensions: bulk db,model" in res.output


def test_dut_check_names_a_port_with_no_dut() -> None:
    import socket
    import threading

    with socket.socket() as ls:  # a peer that accepts and says nothing: not a DUT
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        threading.Thread(target=ls.accept, daemon=True).start()
        r = check_dut(f"socket://127.0.0.1:{ls.getsockname()[1]}", timeout_s=0.3)
    assert not r.ok and "no EEMBC name% reply" in r.problems[0] and "baud" in r.problems[0]


def test_stock_dut_behind_an_io_manager_at_9600_baud(stock: tuple[Path, bytes, np.ndarray]) -> None:
    """MLPerf Tiny's energy-mode topology: host -> IO manager -> DUT at 9600 baud, commands wrapped."""
    elf, blob, x = stock
    with QemuDut(elf) as q, IoManagerEmulator(q.url, dut_baud=9600) as iom:
        cfg = McuConfig(name="energy", kind="mcu", board="qemu-mps2-an386", port=iom.url, io_manager=True,
                        timeout_s=5.0)  # fmt: skip
        with McuTarget(cfg) as t:
            t.load_blob(blob)
            assert t.ext is None and t.dut_name == "dut-[frugalbench]"
            y = t.predict(x[:3])
            w = t.window(0.01)
    qm = codec.read_blob(blob)
    want = np.stack([reference.results_vector(qm, o) for o in reference.run(qm, qm.quantize_input(x[:3]))])
    assert np.allclose(y, want, atol=2e-3)
    assert w.n >= 1 and w.dut_s > 0
    assert all(c.split(" ")[0] == "dut" for c in iom.commands) and "dut infer 1 0" in iom.commands
