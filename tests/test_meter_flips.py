"""A flipped bit on a meter link: every flip the protocol lets a driver see makes the window invalid.

LPM01A ``ascii_dec`` lines and PPK2 frames carry no checksum, so these tests pin down exactly which flips
are seen (and invalidate the window) and which cannot be (one digit into another, an ADC bit), and bound
what an unseen one does to a sample. ``benches/perf/meter_faults.py`` measures the same on a live link.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from harness.emulators import ppk2 as ppk_emu
from harness.emulators.faultproxy import FaultPlan, FaultProxy
from harness.errors import WindowInvalid
from harness.meters import lpm01a, ppk2
from harness.meters._common import sampled_trace
from harness.meters.windows import MIN_MARKER_HOLD_S, gpio_window

RATE = 1000
LO, HI = (a * 3.3 / RATE for a in lpm01a.AMPS_RANGE)  # the driver's range in J per sample at 3.3 V


def lpm_feed(data: bytes) -> lpm01a.LpmStream:
    s = lpm01a.LpmStream(RATE, float(RATE), LO, HI)
    s.feed(data)
    return s


def flips(line: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    for i in range(len(line)):
        for bit in range(8):
            b = bytearray(line)
            b[i] ^= 1 << bit
            out.append((i, bit, bytes(b)))
    return out


# --- LPM01A ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ws", [b"\x0c", b"\t", b" "])
def test_lpm_sample_line_with_a_flipped_line_end_is_corrupt(ws: bytes) -> None:
    # '\r' (0x0d) flips into a form feed (0x0c) or a tab (0x09): whitespace, yet not what the firmware sends
    s = lpm_feed(b"2000-08\r\n2000-08" + ws + b"\n2000-08\r\n")
    assert len(s.values) == 3 and math.isnan(s.values[1]) and "malformed sample line" in s.problems[0]


def test_lpm_only_digit_to_digit_flips_of_a_sample_go_unseen() -> None:
    line = b"2000-08\r\n"
    prev = nxt = b"2000-08\r\n"
    unseen: list[tuple[int, float]] = []
    for i, _bit, bad in flips(line):
        s = lpm_feed(prev + bad + nxt)
        seen = bool(s.problems) or len(s.values) != 3 or any(math.isnan(v) for v in s.values)
        if not seen:
            assert bad[i : i + 1].isdigit() and line[i : i + 1].isdigit(), (i, bad)
            unseen.append((i, s.values[1] / s.values[0]))
    # the unseen ones change a mantissa digit (a leading 0 reads as a zero sample) or the last exponent
    # digit: the sample becomes 0 to 10 times itself
    assert {i for i, _ in unseen} == {0, 1, 2, 3, 6}
    assert all(0 <= r <= 10 + 1e-12 for _, r in unseen)


def test_lpm_flipped_sample_makes_the_window_invalid() -> None:
    events = {100: b"event 00 ris\r\n", 300: b"event 01 ris\r\n"}
    body = b"".join(events.get(k, b"") + b"2000-08\r\n" for k in range(400))
    clean = lpm_feed(body)
    tr = sampled_trace(np.asarray(clean.values) * 1.0, RATE, clean.markers, clean.dropped, clean.problems)
    assert gpio_window(tr, 1, channel=7).valid
    i = body.index(b"2000-08\r\n", 200 * 9) + 7
    bad = lpm_feed(body[:i] + b"\x0c" + body[i + 1 :])
    tr = sampled_trace(np.asarray(bad.values), RATE, bad.markers, bad.dropped, bad.problems)
    assert not gpio_window(tr, 1, channel=7).valid


# --- PPK2 -----------------------------------------------------------------------------------------
CAL = ppk2.Calibration.from_metadata(ppk2.parse_metadata(ppk_emu.metadata_text(3300)))


def ppk_frames(n: int, logic: np.ndarray | None = None, amps: float = 6e-3) -> bytearray:
    idx = np.arange(n)
    lg = np.zeros(n, np.uint8) if logic is None else logic
    return bytearray(ppk_emu.encode_frames(np.full(n, amps), idx, lg).tobytes())


def ppk_trace(raw: bytes) -> ppk2.Trace:
    s = ppk2.Ppk2Stream(cal=CAL, vdd_v=3.3)
    s.feed(raw)
    problems = [f"{s.corrupted} corrupted"] if s.corrupted else []
    problems += [f"{s.over_range} over range"] if s.over_range else []
    return sampled_trace(s.current() * 3.3, ppk2.RATE_HZ, s.markers, s.dropped, problems)


def test_ppk2_flipped_marker_bit_is_a_glitch_not_a_window_edge() -> None:
    logic = np.zeros(3000, np.uint8)
    logic[1000:2000] = 1  # the DUT's marker pulse on D0: 10 ms
    raw = ppk_frames(3000, logic)
    assert gpio_window(ppk_trace(bytes(raw)), 1, channel=0).e_win_j == pytest.approx(6e-3 * 3.3 * 0.01, 1e-3)
    for frame in (500, 1500):  # one flipped D0 bit before the pulse, and one inside it
        bad = bytearray(raw)
        bad[4 * frame + 3] ^= 1
        with pytest.raises(WindowInvalid, match="glitch"):
            gpio_window(ppk_trace(bytes(bad)), 1, channel=0)


def test_ppk2_marker_held_for_the_minimum_is_a_window() -> None:
    logic = np.zeros(100, np.uint8)
    n = round(MIN_MARKER_HOLD_S * ppk2.RATE_HZ)
    logic[20 : 20 + n] = 1
    w = gpio_window(ppk_trace(bytes(ppk_frames(100, logic))), 1, channel=0)
    assert w.valid and w.t_s == pytest.approx(MIN_MARKER_HOLD_S)


def test_ppk2_flipped_range_bit_beyond_1_amp_is_caught() -> None:
    raw = ppk_frames(10, amps=50e-6)  # range 0, ADC ≈ 4.6k: in range 4 that reads ≈ 4.7 A
    assert ppk2.decode_frames(ppk2.split_frames(bytes(raw))[0])[1][0] == 0
    raw[4 * 5 + 2] ^= 1  # bit 16: range 0 -> 4
    s = ppk2.Ppk2Stream(cal=CAL, vdd_v=3.3)
    s.feed(bytes(raw))
    assert s.over_range == 1 and np.isnan(s.current()[5]) and s.dropped == 0


def test_ppk2_adc_at_full_scale_is_not_a_reading() -> None:
    raw = ppk_frames(10)
    raw[4 * 3] |= 0xFF
    raw[4 * 3 + 1] |= 0x3F
    s = ppk2.Ppk2Stream(cal=CAL, vdd_v=3.3)
    s.feed(bytes(raw))
    assert s.over_range == 1 and np.isnan(s.current()[3])


def test_ppk2_unseen_flips_change_one_sample_within_range_steps() -> None:
    # every single-bit flip of one frame (between two good ones): counter flips are caught, logic flips are
    # markers (above); what stays unseen changes the ADC code or picks another valid range
    raw = ppk_frames(3)
    good = ppk2.Ppk2Stream(cal=CAL, vdd_v=3.3)
    good.feed(bytes(raw))
    ref = good.current()[1]
    for bit in range(24):
        bad = bytearray(raw)
        bad[4 + bit // 8] ^= 1 << (bit % 8)
        s = ppk2.Ppk2Stream(cal=CAL, vdd_v=3.3)
        s.feed(bytes(bad))
        seen = s.corrupted or s.over_range or s.dropped or np.isnan(s.current()).any()
        if 18 <= bit <= 23:
            assert seen, bit
        if not seen:
            v = s.current()[1]
            assert bit <= 17 and abs(v) <= ppk2.AMPS_LIMIT
            assert (v == ref) == (bit == 17)  # bit 17 is reserved: flipping it changes nothing


# --- the proxy's fast path forwards and faults exactly as byte by byte -----------------------------
def test_faultproxy_chunked_equals_byte_by_byte() -> None:
    data = bytes(random.Random(3).randrange(256) for _ in range(20000))
    outs = []
    for chunk in (len(data), 1, 4096):
        with FaultProxy(
            ("127.0.0.1", 9), FaultPlan(rate=1e-3, kinds=("drop", "flip", "garbage"), seed=5)
        ) as fp:
            out = b"".join(fp._mangle("down", data[k : k + chunk])[0] for k in range(0, len(data), chunk))
            outs.append((out, [(f.kind, f.offset) for f in fp.log]))
    assert outs[0] == outs[1] == outs[2] and len(outs[0][1]) > 5
