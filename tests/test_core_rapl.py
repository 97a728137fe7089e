"""RAPL reader on a fake powercap tree: sums packages, handles wrap-around, explains permissions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import MeterUnavailable
from harness.meters.energy import window_energy
from harness.meters.rapl import RaplConfig, RaplMeter, find_domains


def _zone(root: Path, name: str, label: str, uj: int, max_uj: int = 1_000_000) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def test_missing_tree_says_why(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="not present"):
        find_domains(tmp_path / "powercap")
    assert "not present" in (RaplMeter.availability(str(tmp_path / "powercap")) or "")


def test_only_package_domains(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 10)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5)
    _zone(tmp_path, "intel-rapl:1", "psys", 5)
    assert [p.name for p in find_domains(tmp_path)] == ["intel-rapl:0"]
    shutil.rmtree(tmp_path / "intel-rapl:0")
    with pytest.raises(MeterUnavailable, match="no package domain"):
        find_domains(tmp_path)


def test_wraparound_and_two_packages(tmp_path: Path) -> None:
    z0 = _zone(tmp_path, "intel-rapl:0", "package-0", 999_000, max_uj=1_000_000 - 1)
    z1 = _zone(tmp_path, "intel-rapl:1", "package-1", 0)
    m = RaplMeter(RaplConfig(kind="rapl", root=str(tmp_path), period_s=10.0))
    m.open()
    m.start()
    # package 0 wraps: 999000 → 1000 is +2000 µJ; package 1 adds 3000 µJ
    (z0 / "energy_uj").write_text("1000\n")
    (z1 / "energy_uj").write_text("3000\n")
    tr = m.stop()
    assert tr.valid and tr.energy_j is not None
    total = window_energy(tr, float(tr.t_s[0]), float(tr.t_s[-1]))
    assert total == pytest.approx(5000e-6)
    assert m.info().energy_class == "counter"


def test_lost_counter_invalidates_trace(tmp_path: Path) -> None:
    z0 = _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    m = RaplMeter(RaplConfig(kind="rapl", root=str(tmp_path), period_s=0.01))
    m.open()
    m.start()
    (z0 / "energy_uj").unlink()
    import time

    time.sleep(0.1)
    tr = m.stop()
    assert not tr.valid and "RAPL read failed" in tr.problem


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to nobody")
def test_permission_error_gives_fix() -> None:
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="fb-rapl-"))  # pytest's own tmp dirs are closed to other users
    tmp_path.chmod(0o755)
    z = _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    (z / "energy_uj").chmod(0o600)
    code = f"from harness.meters.rapl import RaplMeter; print(RaplMeter.availability({str(tmp_path)!r}))"
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert "readable by root only" in out.stdout, out.stderr
    assert "chmod o+r" in out.stdout
    shutil.rmtree(tmp_path)


def test_estimate_is_labelled() -> None:
    from harness.meters.estimate import EstimateConfig, EstimateMeter

    m = EstimateMeter(EstimateConfig(kind="estimate"))
    m.bind_target({"threads": 2})
    m.start()
    tr = m.stop()
    e = window_energy(tr, float(tr.t_s[0]), float(tr.t_s[-1]))
    assert e == pytest.approx(24.0 * (tr.t_s[-1] - tr.t_s[0]))
    assert m.info().energy_class == "estimate" and "Green Algorithms" in m.info().model
    assert np.all(tr.power_w == 24.0)
