"""Frame parsers of every meter: round trips against the emulators' encoders, and hypothesis fuzzing
(arbitrary bytes never crash a parser; they either decode or raise the documented ProtocolError)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.emulators import fnb58 as fnb_emu
from harness.emulators import lpm01a as lpm_emu
from harness.emulators import ppk2 as ppk_emu
from harness.emulators import um34c as um_emu
from harness.errors import ProtocolError
from harness.meters import fnb58, ina2xx, lpm01a, otii, pi5_pmic, ppk2, um34c

FUZZ = settings(max_examples=200, deadline=None)
QUICK = settings(deadline=None)  # no per-example deadline: CI machines are shared


# --- LPM01A -----------------------------------------------------------------------------------
@QUICK
@given(st.floats(min_value=1e-12, max_value=1e3))
def test_lpm_value_round_trip_within_mantissa(v: float) -> None:
    item = lpm01a.parse_line(lpm_emu.encode_value(v))
    assert item[0] == "sample"
    assert abs(item[1] - v) <= 0.5e-3 * v * 1.0001


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("6409-07", "sample"),
        ("TimeStamp: 001s 000ms, buff 00%", "stamp"),
        ("event 03 ris", "event"),
        ("PowerShield > ack htc", "ack"),
        ("PowerShield > error: volt 9000m", "error"),
        ("Error detail: voltage must be 1800m..3300m", "detail"),
        ("PowerShield > Acquisition completed", "done"),
        ("64x9-07", "junk"),
        ("", "empty"),
    ],
)
def test_lpm_line_kinds(line: str, kind: str) -> None:
    assert lpm01a.parse_line(line)[0] == kind


def test_lpm_help_example_is_640_9_microamps() -> None:
    assert lpm01a.parse_line("6409-07")[1] == pytest.approx(640.9e-6)


@FUZZ
@given(st.text(max_size=80))
def test_lpm_parse_line_never_raises(line: str) -> None:
    assert lpm01a.parse_line(line)[0] in {"sample", "stamp", "event", "ack", "error", "detail", "done", "info",
                                          "empty", "junk"}  # fmt: skip


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_lpm_stream_survives_any_bytes(chunks: list[bytes]) -> None:
    s = lpm01a.LpmStream(rate_hz=1000, to_watts=1000.0)
    for c in chunks:
        s.feed(c)
    assert len(s.values) >= 0 and s.dropped >= 0


def test_lpm_stream_counts_missing_samples_between_stamps() -> None:
    s = lpm01a.LpmStream(rate_hz=10, to_watts=10.0)
    s.feed(b"".join(b"1000-06\r\n" for _ in range(10)) + b"TimeStamp: 001s 000ms, buff 00%\r\n")
    s.feed(b"".join(b"1000-06\r\n" for _ in range(7)) + b"TimeStamp: 002s 000ms, buff 100%\r\n")
    assert s.dropped == 3
    assert any("overflow" in p for p in s.problems)


def test_lpm_stream_flags_event_counter_jump() -> None:
    s = lpm01a.LpmStream(rate_hz=10, to_watts=10.0)
    s.feed(b"event 00 ris\r\n1000-06\r\nevent 02 ris\r\n")
    assert any("jumped" in p for p in s.problems)
    assert [m.t_s for m in s.markers] == [0.0, 0.1]


# --- PPK2 -------------------------------------------------------------------------------------
def test_ppk2_metadata_round_trip() -> None:
    meta = ppk2.parse_metadata(ppk_emu.metadata_text(3300))
    cal = ppk2.Calibration.from_metadata(meta)
    assert cal.R.tolist() == ppk_emu.R and cal.O.tolist() == ppk_emu.O
    assert meta["VDD"] == "3300"


def test_ppk2_metadata_without_end_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="END"):
        ppk2.parse_metadata("R0: 1000\nR1: 100\n")


@FUZZ
@given(st.text(max_size=300))
def test_ppk2_metadata_fuzz(text: str) -> None:
    try:
        meta = ppk2.parse_metadata(text)
        ppk2.Calibration.from_metadata(meta)
    except ProtocolError:
        pass


@QUICK
@given(st.lists(st.floats(min_value=1e-6, max_value=0.9), min_size=1, max_size=50), st.integers(0, 10**6))
def test_ppk2_frames_round_trip(amps: list[float], i0: int) -> None:
    a = np.asarray(amps)
    idx = np.arange(i0, i0 + len(a))
    logic = (idx % 3 == 0).astype(np.uint8)
    words, rem = ppk2.split_frames(ppk_emu.encode_frames(a, idx, logic).tobytes())
    assert rem == b""
    adc, rng, cnt, lg = ppk2.decode_frames(words)
    assert (cnt == idx % 64).all() and (lg == logic).all()
    cal = ppk2.Calibration.from_metadata(ppk2.parse_metadata(ppk_emu.metadata_text(3300)))
    got = ppk2.to_amps(adc, rng, cal, 3.3)
    lsb = 4 * 1.8 / 163840 / np.asarray(ppk_emu.R)[rng]
    assert (np.abs(got - a) <= lsb).all()


@FUZZ
@given(st.lists(st.binary(max_size=41), max_size=12))
def test_ppk2_stream_survives_any_bytes(chunks: list[bytes]) -> None:
    cal = ppk2.Calibration.from_metadata({})
    s = ppk2.Ppk2Stream(cal=cal, vdd_v=3.3)
    for c in chunks:
        s.feed(c)
    assert len(s.current()) == s.n
    assert s.n >= sum(len(c) for c in chunks) // 4 - len(chunks)


def test_ppk2_stream_counts_a_gap_and_keeps_time() -> None:
    cal = ppk2.Calibration.from_metadata({})
    idx = np.r_[np.arange(0, 10), np.arange(15, 20)]
    s = ppk2.Ppk2Stream(cal=cal, vdd_v=3.3)
    s.feed(ppk_emu.encode_frames(np.full(len(idx), 1e-3), idx, np.zeros(len(idx), np.uint8)).tobytes())
    assert s.dropped == 5 and s.n == 20 and np.isnan(s.current()[10:15]).all()


def test_ppk2_stream_isolates_one_corrupted_counter() -> None:
    cal = ppk2.Calibration.from_metadata({})
    idx = np.arange(0, 20)
    raw = bytearray(ppk_emu.encode_frames(np.full(20, 1e-3), idx, np.zeros(20, np.uint8)).tobytes())
    raw[4 * 7 + 2] ^= 0xA8
    s = ppk2.Ppk2Stream(cal=cal, vdd_v=3.3)
    s.feed(bytes(raw))
    assert s.corrupted == 1 and s.dropped == 0 and s.n == 20


# --- UM24C/25C/34C ----------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["um24c", "um25c", "um34c"])
def test_um_frame_round_trip(model: str) -> None:
    r = um34c.parse_frame(um_emu.build_frame(model, 5.08, 0.734))
    assert r.model == model.upper()
    assert r.volts == pytest.approx(5.08, abs=0.01) and r.amps == pytest.approx(0.734, abs=0.001)


@pytest.mark.parametrize("model", ["um25c", "um34c"])
@QUICK
@given(pos=st.sampled_from([0, 1, 2, 4, 6, 7, 8]), bit=st.integers(0, 7))
def test_um_corrupted_measurement_bytes_are_rejected(model: str, pos: int, bit: int) -> None:
    # model ID and the high bytes of V, I and P: a UM24C/25C frame has no checksum, so a flip in a low
    # byte changes V·I by less than the power field's 1 mW resolution and cannot be seen

    frame = bytearray(um_emu.build_frame(model, 5.08, 0.734))
    frame[pos] ^= 1 << bit
    with pytest.raises(ProtocolError):
        um34c.parse_frame(bytes(frame))


@FUZZ
@given(st.binary(min_size=0, max_size=140))
def test_um_parse_frame_fuzz(data: bytes) -> None:
    try:
        r = um34c.parse_frame(data)
    except ProtocolError:
        return
    assert r.volts >= 0 and r.amps >= 0


# --- FNB48/58 ---------------------------------------------------------------------------------
def test_fnb_out_report_crc_matches_published_bytes() -> None:
    assert [fnb58.make_out(c)[63] for c in (0x81, 0x82, 0x83)] == [0x8E, 0x96, 0x9E]


def test_fnb_in_report_round_trip() -> None:
    got = fnb58.parse_report(fnb_emu.in_report([5.1, 5.2, 5.3, 5.4], [0.1, 0.2, 0.3, 0.4]))
    assert got is not None
    assert [round(v, 5) for v, _ in got] == [5.1, 5.2, 5.3, 5.4]
    assert [round(i, 5) for _, i in got] == [0.1, 0.2, 0.3, 0.4]


@FUZZ
@given(st.binary(min_size=0, max_size=70))
def test_fnb_parse_report_fuzz(data: bytes) -> None:
    try:
        got = fnb58.parse_report(data)
    except ProtocolError:
        return
    assert got is None or len(got) == 4


@QUICK
@given(st.integers(1, 62), st.integers(0, 7))
def test_fnb_any_single_bit_flip_fails_crc(pos: int, bit: int) -> None:
    rep = bytearray(fnb_emu.in_report([5.0] * 4, [0.5] * 4))
    rep[pos] ^= 1 << bit
    with pytest.raises(ProtocolError, match="CRC"):
        fnb58.parse_report(bytes(rep))


# --- Otii, INA bridge, PMIC ---------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=80))
def test_otii_parse_message_fuzz(data: bytes) -> None:
    try:
        msg = otii.parse_message(data)
    except ProtocolError:
        return
    assert "type" in msg


def test_otii_parse_message_accepts_banner() -> None:
    banner = json.dumps({"type": "information", "info": "connected", "data": {}}).encode()
    assert otii.parse_message(banner)["info"] == "connected"


@FUZZ
@given(st.text(max_size=12))
def test_ina_parse_reply_fuzz(text: str) -> None:
    try:
        v = ina2xx.parse_reply(text)
    except ProtocolError:
        return
    assert 0 <= v <= 0xFFFF


def test_ina_scaling_and_calibration() -> None:
    assert ina2xx.shunt_volts(0xFFFF, "ina226") == pytest.approx(-2.5e-6)
    assert ina2xx.bus_volts((1275 << 3) | 2, "ina219") == pytest.approx(5.1)
    assert ina2xx.bus_volts(4080, "ina226") == pytest.approx(5.1)
    cal, lsb = ina2xx.calibration("ina226", 0.01, 3.2768)
    assert lsb == pytest.approx(1e-4) and cal == 5120


PMIC_SAMPLE = """\
 3V7_WL_SW_A current(0)=0.00000000A
 VDD_CORE_A current(7)=1.54489000A
 VDD_CORE_V volt(15)=0.88725180V
 3V3_SYS_A current(1)=0.05000000A
 3V3_SYS_V volt(9)=3.30000000V
 EXT5V_V volt(24)=5.15036000V
"""


def test_pmic_parse_and_power() -> None:
    rails = pi5_pmic.parse_pmic(PMIC_SAMPLE)
    assert rails["EXT5V"] == {"V": pytest.approx(5.15036)}
    assert pi5_pmic.rails_power(rails) == pytest.approx(1.54489 * 0.8872518 + 0.05 * 3.3)


@FUZZ
@given(st.text(max_size=200))
def test_pmic_parse_fuzz(text: str) -> None:
    try:
        rails = pi5_pmic.parse_pmic(text)
    except ProtocolError:
        return
    assert all(set(r) <= {"A", "V"} for r in rails.values())
    pi5_pmic.rails_power(rails)


# --- emulators: whatever a host sends, the emulated device never crashes ---------------------------
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=6,
)
OTII_CMDS = ["otii_get_devices", "otii_create_project", "arc_enable_channel", "arc_set_main_voltage",
             "project_start_recording", "project_stop_recording", "project_get_last_recording",
             "recording_get_channel_data", "recording_get_channel_data_count"]  # fmt: skip
LPM_WORDS = ["htc", "start", "stop", "freq", "volt", "output", "format", "echo", "powershield", "lcd"]
HOST_BYTES = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda w, a: f"{w} {a}\r\n".encode(), st.sampled_from(LPM_WORDS), st.text(max_size=8)),
    st.builds(
        lambda c, d: json.dumps({"type": "request", "cmd": c, "data": d, "trans_id": "1"}).encode() + b"\r\n",
        st.sampled_from(OTII_CMDS),
        st.dictionaries(
            st.sampled_from(
                ["device_id", "channel", "enable", "value", "recording_id", "index", "count", "project_id"]
            ),
            JSONISH,
            max_size=5,
        ),
    ),  # fmt: skip
    st.builds(
        lambda op, rest: bytes([op]) + rest,
        st.sampled_from([0x06, 0x07, 0x0C, 0x0D, 0x11, 0x19, 0x25]),
        st.binary(max_size=5),
    ),  # fmt: skip
    st.builds(
        lambda a, r, v: f"w {a} {r} {v}\nr {a} {r}\n".encode(),
        st.text("0123456789ABFGx", max_size=3),
        st.text("0123456789ABFEx", max_size=3),
        st.text("0123456789ABCDEF", max_size=5),
    ),  # fmt: skip
)


@FUZZ
@given(st.lists(HOST_BYTES, max_size=8))
def test_emulators_survive_any_host_bytes(chunks: list[bytes]) -> None:
    from harness.emulators.ina2xx import InaEmulator
    from harness.emulators.otii import OtiiEmulator

    emus = [
        lpm_emu.Lpm01aEmulator(),
        ppk_emu.Ppk2Emulator(),
        um_emu.UmEmulator(),
        InaEmulator(),
        OtiiEmulator(),
    ]
    for emu in emus:
        for c in chunks:
            emu.on_bytes(c)
            emu.poll()
        emu.take_output()
