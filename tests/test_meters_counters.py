"""NVML (fake ``pynvml`` module), Pi 5 PMIC (a real ``vcgencmd`` stand-in script run as a subprocess),
the energy-window logic, and the ``frugalbench meters`` / ``emulate meter`` commands."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli.meters import emulate_app, meters_app
from harness.emulators.base import EmulatorServer
from harness.emulators.ppk2 import Ppk2Emulator
from harness.emulators.profile import Profile
from harness.errors import MeterUnavailable, WindowInvalid
from harness.meters.base import Marker, Trace
from harness.meters.energy import window_energy
from harness.meters.nvml import Nvml, NvmlConfig, probe
from harness.meters.pi5_pmic import Pi5Pmic, PmicConfig
from harness.meters.um34c import Um34c, UmConfig
from harness.meters.windows import MIN_WINDOW_S, gpio_bounds, gpio_window, host_window


# --- NVML ---------------------------------------------------------------------------------------
class NVMLError(Exception):
    pass


class FakePynvml:
    """The slice of ``pynvml`` the driver uses; a 250 W GPU whose counter ticks every 10 ms."""

    def __init__(self, watts: float = 250.0, driver: bool = True, energy: bool = True) -> None:
        self.watts, self.driver, self.energy, self.t0 = watts, driver, energy, time.perf_counter()
        self.inits = 0

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if not self.driver:
            raise NVMLError("Driver Not Loaded")
        self.inits += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.inits -= 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 1

    def nvmlDeviceGetHandleByIndex(self, i: int) -> object:  # noqa: N802
        return ("gpu", i)

    def nvmlDeviceGetName(self, h: object) -> bytes:  # noqa: N802
        return b"NVIDIA H100 80GB HBM3 (fake)"

    def nvmlDeviceGetTotalEnergyConsumption(self, h: object) -> int:  # noqa: N802
        if not self.energy:
            raise NVMLError("Not Supported")
        ticks = int((time.perf_counter() - self.t0) / 0.01)
        return 123_456_789 + int(ticks * 0.01 * self.watts * 1000)


def test_nvml_counter_trace_and_window() -> None:
    nv = FakePynvml()
    meter = Nvml(NvmlConfig(kind="nvml", poll_hz=100), transport=nv)
    meter.open()
    meter.start()
    time.sleep(0.1)
    t0 = time.perf_counter()
    time.sleep(0.4)
    t1 = time.perf_counter()
    time.sleep(0.1)
    trace = meter.stop()
    meter.close()
    assert trace.valid and trace.energy_j is not None and trace.host_aligned
    e, method = meter.window_energy(trace, t0, t1, 1)
    assert method == "host-clock"
    assert e == pytest.approx(250.0 * (t1 - t0), rel=0.1)
    info = meter.info()
    assert info.energy_class == "counter" and "H100" in info.model
    assert nv.inits == 0


def test_nvml_availability_reasons() -> None:
    assert "no NVIDIA driver" in (probe(FakePynvml(driver=False)) or "")
    assert "Volta" in (probe(FakePynvml(energy=False)) or "")
    assert probe(FakePynvml()) is None
    why = Nvml.availability()
    assert why is None or "nvidia-ml-py" in why or "NVML" in why or "GPU" in why
    with pytest.raises(MeterUnavailable, match="Volta"):
        Nvml(NvmlConfig(kind="nvml"), transport=FakePynvml(energy=False)).open()


# --- Pi 5 PMIC ----------------------------------------------------------------------------------
PMIC = """ VDD_CORE_A current(7)=1.50000000A
 VDD_CORE_V volt(15)=0.90000000V
 3V3_SYS_A current(1)=0.10000000A
 3V3_SYS_V volt(9)=3.30000000V
 EXT5V_V volt(24)=5.10000000V
"""


def fake_vcgencmd(tmp_path: Path, text: str, rc: int = 0) -> Path:
    script = tmp_path / "vcgencmd"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write({text!r})\nsys.exit({rc})\n")
    script.chmod(0o755)
    return script


def test_pmic_polls_a_real_subprocess(tmp_path: Path) -> None:
    script = fake_vcgencmd(tmp_path, PMIC)
    meter = Pi5Pmic(PmicConfig(kind="pi5_pmic", command=[str(script), "pmic_read_adc"], poll_hz=20))
    meter.open()
    meter.start()
    time.sleep(0.4)
    trace = meter.stop()
    meter.close()
    assert trace.valid, trace.problem
    assert trace.power_w is not None and np.allclose(trace.power_w, 1.5 * 0.9 + 0.1 * 3.3)
    assert trace.extra["ext5v_v"][0] == pytest.approx(5.1)
    assert meter.info().energy_class == "counter"


def test_pmic_failing_command_invalidates(tmp_path: Path) -> None:
    good = fake_vcgencmd(tmp_path, PMIC)
    meter = Pi5Pmic(PmicConfig(kind="pi5_pmic", command=[str(good)], poll_hz=20))
    meter.open()
    good.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    meter.start()
    time.sleep(0.2)
    trace = meter.stop()
    assert not trace.valid and "exited 3" in trace.problem


# --- windows --------------------------------------------------------------------------------------
def sampled(p: np.ndarray, rate: float, markers: list[Marker], **kw: object) -> Trace:
    from harness.meters._common import sampled_trace

    return sampled_trace(p, rate, markers, int(kw.get("dropped", 0)), list(kw.get("problems", [])))


def test_gpio_window_primary_and_idle_subtracted() -> None:
    p = np.full(1000, 0.002)
    p[300:700] = 0.010
    tr = sampled(p, 1000.0, [Marker(0.3, 0, 1), Marker(0.7, 0, 0)])
    w = gpio_window(tr, 40, channel=0, idle_s=0.2)
    assert w.e_win_j == pytest.approx(0.004) and w.t_s == pytest.approx(0.4)
    assert w.e_per_inf_j == pytest.approx(1e-4)
    assert w.p_idle_w == pytest.approx(0.002)
    assert w.e_dyn_per_inf_j == pytest.approx((0.004 - 0.002 * 0.4) / 40)
    assert w.valid and w.n_samples == 400
    assert any("below minimum" in n for n in gpio_window(tr, 40, channel=0, min_s=MIN_WINDOW_S["mcu"]).notes)


def test_last_pair_rule_for_event_markers() -> None:
    tr = sampled(np.ones(100), 100.0, [Marker(0.1, 7, 0), Marker(0.2, 7, 0), Marker(0.5, 7, 0)])
    assert gpio_bounds(tr, 7) == (0.2, 0.5)


def test_missing_markers_raise_window_invalid() -> None:
    tr = sampled(np.ones(100), 100.0, [Marker(0.1, 0, 1)])
    with pytest.raises(WindowInvalid, match="marker"):
        gpio_window(tr, 1, channel=0)


def test_invalid_or_lossy_traces_give_invalid_windows() -> None:
    lost = sampled(
        np.ones(100), 100.0, [Marker(0.1, 0, 1), Marker(0.5, 0, 0)], problems=["meter connection lost"]
    )
    assert not gpio_window(lost, 1, channel=0).valid
    dropped = sampled(np.ones(100), 100.0, [Marker(0.1, 0, 1), Marker(0.5, 0, 0)], dropped=3)
    w = gpio_window(dropped, 1, channel=0)
    assert not w.valid and "3 samples dropped" in w.problem
    meter_clock = sampled(np.ones(100), 100.0, [])
    assert not host_window(meter_clock, 0.1, 0.2, 1).valid


def test_host_window_trapezoid_and_gap() -> None:
    t = np.array([0.0, 1.0, 2.0, 5.0, 6.0])
    tr = Trace(t_s=t, power_w=np.array([1.0, 1.0, 3.0, 3.0, 3.0]))
    assert window_energy(tr, 0.0, 2.0) == pytest.approx(3.0)
    w = host_window(tr, 0.5, 5.5, 1, max_gap_s=2.0)
    assert not w.valid and "gap" in w.problem


# --- CLI ------------------------------------------------------------------------------------------
def test_meters_lists_drivers_and_probes_board_urls(tmp_path: Path) -> None:
    with EmulatorServer(Ppk2Emulator(Profile())) as srv:
        (tmp_path / "rig.toml").write_text(f'[meter]\nkind = "ppk2"\nurl = "{srv.url}"\n')
        (tmp_path / "gone.toml").write_text('[meter]\nkind = "um34c"\nurl = "/dev/does-not-exist-fb"\n')
        res = CliRunner().invoke(meters_app, ["--boards", str(tmp_path), "--probe"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    for word in (
        "lpm01a",
        "ppk2",
        "um34c",
        "nvml",
        "rig.toml",
        srv.url,
        "reachable (Nordic PPK2 (emulator))",
    ):
        assert word in res.output
    assert "unreachable: cannot open UM meter" in res.output


def test_meters_record_writes_csv(tmp_path: Path) -> None:
    prof = Profile(kind="constant", low_w=0.01, windows=[(0.05, 0.2)])
    out = tmp_path / "trace.csv"
    with EmulatorServer(Ppk2Emulator(prof)) as srv:
        res = CliRunner().invoke(
            meters_app, ["record", "ppk2", "--url", srv.url, "--seconds", "0.3", "-o", str(out)]
        )
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "simulated" in res.output
    lines = out.read_text().splitlines()
    assert "# class: simulated" in lines
    assert sum(line.startswith("# marker:") for line in lines) == 2
    rows = list(csv.reader(x for x in lines if not x.startswith("#")))
    assert rows[0] == ["t_s", "power_w"] and len(rows) > 20_000
    assert float(rows[10][1]) == pytest.approx(0.01, rel=1e-3)


def test_emulate_meter_command_serves_a_real_port() -> None:
    assert emulate_app.registered_commands
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli.meters", "emulate", "meter", "um34c", "--url", "socket://127.0.0.1:0",
         "--profile", "constant", "--low-w", "2.0", "--voltage-v", "5.0", "--set", "model=um25c"],
        stdout=subprocess.PIPE, text=True, env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split("listening on ")[1].split()[0]
        meter = Um34c(UmConfig(kind="um34c", url=url, simulated=True))
        meter.open()
        reading = meter.poll()
        meter.close()
        assert reading.model == "UM25C" and reading.watts == pytest.approx(2.0, rel=1e-3)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.parametrize("profile", sorted(Path("boards/meters").glob("*.toml")), ids=lambda p: p.stem)
def test_example_meter_profiles_validate(profile: Path) -> None:
    import tomllib

    from harness.cli.meters import build_meter

    table = tomllib.loads(profile.read_text())["meter"]
    meter = build_meter(table.pop("kind"), table)
    assert meter.config.boundary


def test_record_with_a_board_profile_and_url_override(tmp_path: Path) -> None:
    prof = Profile(kind="constant", low_w=0.01, windows=[(0.05, 0.2)])
    out = tmp_path / "t.csv"
    with EmulatorServer(Ppk2Emulator(prof)) as srv:
        res = CliRunner().invoke(
            meters_app,
            [
                "record",
                "ppk2",
                "--board",
                "boards/meters/ppk2.toml",
                "--url",
                srv.url,
                "--seconds",
                "0.3",
                "-o",
                str(out),
            ],
        )
    assert res.exit_code == 0, res.output
    assert "# boundary: MCU VDD (PPK2 VOUT)" in out.read_text().splitlines()


def test_emulate_meter_refuses_to_impersonate_hardware() -> None:
    """``impersonate`` is a test-only switch: from the command line it would pass an emulator off as
    hardware and its energy as a measurement."""
    # an unservable URL: without the refusal the command fails on the URL instead of serving forever
    res = CliRunner().invoke(emulate_app, ["meter", "um34c", "--url", "nowhere", "--set", "impersonate=true"])
    assert res.exit_code != 0
    assert "test-only" in str(res.exception)
