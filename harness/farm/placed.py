"""A board target reached through a labgrid place: the MCU target on the place's serial URL.

:class:`PlacedTarget` wraps the registered ``mcu`` target (opened with ``port = <place URL>``), adds
the place and exporter host to ``info()`` (so every stored result names where it ran) and remembers
transport faults (lost link, silent or reset DUT) that the runner would otherwise only store as a
failed result, so the farm can tell a lost place from a job that genuinely fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ProtocolError, WindowInvalid
from ..ir.model import Variant
from ..suite import validate_target
from ..targets.artefact import Artefact, ArtefactFile
from ..targets.base import TARGETS, Target, Window
from ..targets.mcu import LinkGaveUp
from .profile import Endpoint

# LinkGaveUp: the MCU target's own bounded reconnects and retries failed, so the link itself is gone
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (ProtocolError, WindowInvalid, OSError, EOFError, LinkGaveUp)


def _transport(e: BaseException) -> bool:
    try:
        import serial

        if isinstance(e, serial.SerialException):
            return True
    except ImportError:  # pragma: no cover - pyserial is a core dependency
        pass
    return isinstance(e, TRANSPORT_ERRORS)


class PlacedTarget(Target):
    """Delegates to the real target; ``fault`` holds the last transport error seen (or ``None``)."""

    kind = "mcu"

    def __init__(self, tab: dict[str, Any], ep: Endpoint, extra: dict[str, Any] | None = None) -> None:
        cfg = validate_target({**tab, "port": ep.url}, where=f"target {tab.get('name')} on place {ep.place}")
        self.inner: Target = TARGETS.get(cfg.kind)(cfg)
        super().__init__(cfg)
        self.ep = ep
        self.extra = dict(extra or {})
        self.fault: BaseException | None = None

    def _call(self, fn: Any, *a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except BaseException as e:
            if _transport(e):
                self.fault = e
            raise

    def open(self) -> None:
        self._call(self.inner.open)

    def supports(self, variant: Variant) -> str | None:
        return self.inner.supports(variant)

    @property
    def artefact(self) -> Artefact:
        return self.inner.artefact

    def load(self, variant: Variant, artefact: ArtefactFile) -> None:
        self._call(self.inner.load, variant, artefact)

    def set_inputs(self, x: np.ndarray) -> None:
        self._call(self.inner.set_inputs, x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._call(self.inner.predict, x)  # type: ignore[no-any-return]

    def window(self, duration_s: float, *, warmup_s: float = 0.0) -> Window:
        return self._call(self.inner.window, duration_s, warmup_s=warmup_s)  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        info = dict(self.inner.info())
        info.update(self.ep.provenance())
        info.update(self.extra)
        return info

    def default_meter(self) -> dict[str, Any] | None:
        return self.inner.default_meter()

    def close(self) -> None:
        self.inner.close()
