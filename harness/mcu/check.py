"""``frugalbench dut check PORT``: one report on an EEMBC DUT before a long run.

Name, profile (firmware and model), the extensions it offers (or that it is a stock DUT: plain EEMBC,
hex input, its built-in model), the link's baud rate and a timestamp sanity check: two ``timestamp%``
replies ``gap_s`` apart on the host must be ``gap_s`` apart on the DUT's clock (a wrong tick rate or
clock setup shows as a ratio away from 1). Works on any ``serial_for_url`` URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import ProtocolError, TargetError
from .protocol import DutClient, Extensions

#: DUT seconds per host second accepted as sane (a crystal is within 1e-4; an emulator's virtual
#: clock follows host time while the core sleeps)
CLOCK_RATIO = (0.95, 1.05)


@dataclass
class DutCheck:
    """What ``check_dut`` found; ``problems`` empty means ready for a run."""

    url: str
    baud: int
    name: str = ""
    firmware: str = ""
    model: str = ""
    extensions: Extensions | None = None
    clock_ratio: float | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report, one ``key: value`` line each."""
        ext = self.extensions
        out = [
            f"port: {self.url} at {self.baud} baud",
            f"name: {self.name or '?'}",
            f"profile: {self.firmware or '?'}; model {self.model or '?'}",
        ]
        if ext is None:
            out.append("extensions: none (stock DUT: plain EEMBC, hex input, its built-in model)")
        else:
            out.append(
                f"extensions: bulk {','.join(ext.bulk) or '-'}; limits model={ext.model_max} db={ext.db_max} "
                f"act={ext.act_max}; tick {ext.tick_hz} Hz; reply checksums {'on' if ext.crc else 'off'}; "
                f"board {ext.board or '?'}"
            )
        ratio = "n/a" if self.clock_ratio is None else f"{self.clock_ratio:.4f} DUT s per host s"
        out.append(f"timestamps: {ratio}")
        out += [f"note: {n}" for n in self.notes]
        out += [f"problem: {p}" for p in self.problems]
        out.append("ready" if self.ok else "NOT ready")
        return out


def check_dut(url: str, baud: int = 115200, *, timeout_s: float = 2.0, gap_s: float = 0.5) -> DutCheck:
    """Open ``url``, ask the DUT who it is and what it offers, and check its timestamps."""
    import serial

    report = DutCheck(url, baud)
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=timeout_s)
    except (serial.SerialException, ValueError, OSError) as e:
        raise TargetError(
            f"cannot open {url}: {e}; check the URL and that no other program holds it"
        ) from None
    try:
        dut = DutClient(port, timeout_s=timeout_s, retries=1)
        try:
            dut.resync()
            report.name = dut.name()
        except (ProtocolError, OSError) as e:
            report.problems.append(
                f"no EEMBC name% reply ({e}): wrong port, a baud rate other than {baud} (the firmware's), "
                "or a DUT in energy mode behind an IO manager"
            )
            return report
        report.firmware, report.model = dut.profile()
        report.extensions = dut.negotiate()
        t1 = dut.timestamp_us()
        h1 = time.perf_counter()
        time.sleep(gap_s)
        t2 = dut.timestamp_us()
        h2 = time.perf_counter()
        if t1 is None or t2 is None:
            report.notes.append("timestamp% prints no m-lap-us (energy-mode DUT: the GPIO toggles instead)")
        elif t2 <= t1:
            report.problems.append(f"timestamps went backwards or stood still ({t1} then {t2} us)")
        else:
            # each stamp is taken between its command's send and reply: allow that in the ratio
            report.clock_ratio = (t2 - t1) / 1e6 / (h2 - h1)
            lo, hi = CLOCK_RATIO
            if not lo <= report.clock_ratio <= hi:
                tick = f" (tick {report.extensions.tick_hz} Hz)" if report.extensions else ""
                report.problems.append(
                    f"the DUT's clock runs at {report.clock_ratio:.3f} of host time{tick}: check the board's "
                    "timer clock (board_tick_hz) against its real core clock"
                )
        if report.model in ("", "none"):
            report.notes.append("no model loaded: a run uploads one (needs the model extension)")
    except (ProtocolError, OSError) as e:
        report.problems.append(f"the DUT stopped answering during the check: {e}")
    finally:
        port.close()
    return report
