"""Real-board ports (built, never run here: no boards in CI): NUCLEO-L4R5ZI (Cortex-M4F), NUCLEO-L552ZE-Q
(Cortex-M33) and NUCLEO-F767ZI (Cortex-M7) build with ``make BOARD=...`` and their images are sane:
the vector table sits at the flash origin with the stack at the top of RAM and handlers inside the
image, the core and FPU are the board's, the image fits its flash and the static RAM its RAM with room
for a stack, and the model area the firmware reserves is the profile's ``model_ram_bytes``."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from mcu_support import build

from harness.mcu.board import load_board
from harness.mcu.build import toolchain_missing
from harness.mcu.footprint import firmware_sizes

pytestmark = pytest.mark.skipif(toolchain_missing() is not None, reason=f"{toolchain_missing()}")

# board -> (flash origin, RAM origin, readelf -A Tag_CPU_name / Tag_FP_arch / single-precision-only FPU,
# the UART IRQ's vector slot and handler)
FPV5 = "FPv5/FP-D16 for ARMv8"
BOARDS = {
    "nucleo-l4r5zi": (0x08000000, 0x20000000, ("7E-M", "VFPv4-D16", True), 16 + 70, "LPUART1_IRQHandler"),
    "nucleo-l552ze-q": (0x08000000, 0x20000000, ("8-M.MAIN", FPV5, True), 16 + 66, "LPUART1_IRQHandler"),
    "nucleo-f767zi": (0x08000000, 0x20000000, ("7E-M", FPV5, False), 16 + 39, "USART3_IRQHandler"),
}
MIN_STACK = 8 * 1024  # bytes of RAM left above .data/.bss/.noinit for the stack


def _symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {p[2]: int(p[0], 16) for p in (line.split() for line in out.splitlines()) if len(p) == 3}


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_real_board_port_builds_with_a_sane_image(board: str) -> None:
    flash0, ram0, (cpu, fp, sp_only), irq_slot, irq_handler = BOARDS[board]
    prof = load_board(board)
    assert prof.firmware_board == board and not prof.emulated and prof.meter  # measured, not emulated
    elf = build(board)
    image = (elf.parent / "fw.bin").read_bytes()  # starts at .vectors: the flash origin
    words = struct.unpack_from(f"<{irq_slot + 1}I", image)
    syms = _symbols(elf)
    assert syms["fb_vectors"] == flash0
    assert words[0] == ram0 + prof.budget.ram_bytes == syms["_estack"]  # initial SP: top of RAM
    assert words[1] == syms["Reset_Handler"] | 1  # Thumb bit set
    assert words[15] == syms["SysTick_Handler"] | 1
    assert words[irq_slot] == syms[irq_handler] | 1
    for w in (words[1], words[15], words[irq_slot]):
        assert flash0 < w < flash0 + len(image)
    attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(elf)], capture_output=True, text=True).stdout
    assert f'Tag_CPU_name: "{cpu}"' in attrs and f"Tag_FP_arch: {fp}\n" in attrs, attrs
    assert ("Tag_ABI_HardFP_use: SP only" in attrs) == sp_only
    assert "Tag_ABI_VFP_args: VFP registers" in attrs
    sizes = firmware_sizes(elf)
    assert len(image) == sizes.image_bytes <= prof.budget.flash_bytes
    assert sizes.static_ram_bytes + MIN_STACK <= prof.budget.ram_bytes
    assert sizes.reserved["model_area"] == prof.budget.model_ram_bytes
    assert sizes.reserved["db_words"] >= prof.budget.db_bytes
