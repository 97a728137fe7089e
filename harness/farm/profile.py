"""Which labgrid places run which board kind, and how to reach a place's serial port.

A board kind is a board profile name (``boards/<name>.toml``) used by a suite's ``mcu`` target. Places
for it come from a farm profile (TOML, optional) or, by default, from labgrid place tags::

    # farm.toml                                   # or tag the places instead:
    [[boards]]                                    #   labgrid-client -p qemu-a set-tags board=qemu-mps2-an386
    board = "qemu-mps2-an386"
    places = ["qemu-a", "qemu-b"]                 # explicit place names (must exist), or
    tags = { board = "qemu-mps2-an386" }          # every place with these tags (the default)

A place fits a board when it matches exactly one serial resource (labgrid exports every serial port,
``NetworkSerialPort``, ``RawSerialPort`` or ``USBSerialPort``, as a ``NetworkSerialPort``) and its
``board`` tag, if any, names that board. The serial URL is ``socket://host:port`` (protocol ``raw``)
or ``rfc2217://host:port?ign_set_control`` (ser2net), which ``serial.serial_for_url`` opens like a local port.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from .errors import PlaceMismatch, PlaceNotFound
from .lgsession import PlaceInfo, Resource, Snapshot

SERIAL_CLS = "NetworkSerialPort"  # what every exported serial port looks like to a client
OTHER_SERIAL = ("RawSerialPort", "USBSerialPort")  # local classes; exported as NetworkSerialPort


class FarmBoard(BaseModel):
    """The places of one board kind."""

    model_config = ConfigDict(extra="forbid")
    board: str = Field(description="board profile name (boards/<name>.toml), as in the suite's mcu target")
    places: list[str] = Field(default_factory=list, description="labgrid place names")
    tags: dict[str, str] = Field(default_factory=dict, description="select places by labgrid tags")


class FarmProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    coordinator: str | None = None
    boards: list[FarmBoard] = Field(default_factory=list)

    def board(self, name: str) -> FarmBoard:
        for b in self.boards:
            if b.board == name:
                return b
        return FarmBoard(board=name, tags={"board": name})


def load_farm_profile(path: str | Path | None) -> FarmProfile:
    """Read a farm profile; ``None`` gives the default (places tagged ``board=<board>``)."""
    if path is None:
        return FarmProfile()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"farm profile {p} not found (see harness/farm/profile.py for the format)")
    try:
        return FarmProfile(**tomllib.loads(p.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValidationError, TypeError) as e:
        raise ConfigError(f"farm profile {p}: {e}") from None


@dataclass(frozen=True)
class Endpoint:
    """How to reach one place's board: the serial URL and where it is exported from."""

    place: str
    url: str
    exporter: str
    host: str
    resource: str

    def provenance(self) -> dict[str, str]:
        return {
            "farm_place": self.place,
            "farm_exporter": self.exporter,
            "farm_exporter_host": self.host,
            "farm_serial_url": self.url,
            "farm_resource": self.resource,
        }


def _matches(place: PlaceInfo, res: Resource) -> bool:
    for pattern in place.matches:
        parts = pattern.split("/")
        if len(parts) < 3:
            continue
        want = (res.exporter, res.group, res.cls, res.name)
        if all(fnmatchcase(have, pat) for have, pat in zip(want, parts, strict=False)):
            return True
    return False


def place_resources(snap: Snapshot, place: PlaceInfo) -> list[Resource]:
    return [r for r in snap.resources if _matches(place, r)]


def candidates(snap: Snapshot, board: FarmBoard) -> list[str]:
    """Place names for ``board``: the explicit list (each must exist) or those carrying its tags."""
    if board.places:
        missing = [p for p in board.places if p not in snap.places]
        if missing:
            raise PlaceNotFound(
                f"place(s) {', '.join(missing)} for board {board.board} do not exist on the coordinator; "
                f"known places: {', '.join(sorted(snap.places)) or 'none'}. Create one with "
                "`labgrid-client -p NAME create` and `add-match EXPORTER/GROUP/NetworkSerialPort`, "
                "or fix the farm profile"
            )
        return list(board.places)
    return sorted(n for n, p in snap.places.items() if all(p.tags.get(k) == v for k, v in board.tags.items()))


def endpoint(snap: Snapshot, name: str, board: str, *, resolve: bool = True) -> Endpoint | None:
    """The serial endpoint of place ``name`` for ``board``; :class:`PlaceMismatch` if it does not fit.

    ``resolve=False`` checks the fit only: a ser2net-exported port has its TCP port only once acquired.
    """
    place = snap.places.get(name)
    if place is None:
        raise PlaceNotFound(
            f"place {name} does not exist on the coordinator (known: {', '.join(sorted(snap.places))})"
        )
    tagged = place.tags.get("board")
    if tagged is not None and tagged != board:
        raise PlaceMismatch(
            f"place {name} is tagged board={tagged} but is used for board {board}; fix the farm profile "
            f"or the tag (`labgrid-client -p {name} set-tags board={board}`)"
        )
    res = place_resources(snap, place)
    serial = [r for r in res if r.cls == SERIAL_CLS]
    have = ", ".join(f"{r.exporter}/{r.group}/{r.cls}" for r in res) or "no resources"
    if not serial:
        raise PlaceMismatch(
            f"place {name} (matches {place.matches or 'nothing'}) has {have}, but board {board} needs one serial "
            f"port ({SERIAL_CLS}, or {'/'.join(OTHER_SERIAL)} exported through ser2net); add one with "
            f"`labgrid-client -p {name} add-match EXPORTER/GROUP/{SERIAL_CLS}`"
        )
    if len(serial) > 1:
        raise PlaceMismatch(
            f"place {name} matches {len(serial)} serial ports ({have}); board {board} needs exactly one: "
            "narrow the place's match patterns"
        )
    r = serial[0]
    if not resolve:
        return None
    host, port = r.params.get("host"), r.params.get("port")
    proto = str(r.params.get("protocol", "rfc2217"))
    if not host or not port:
        raise PlaceMismatch(
            f"place {name}: serial resource {r.exporter}/{r.group} has no host/port yet ({r.params})"
        )
    scheme = {"raw": "socket", "rfc2217": "rfc2217"}.get(proto)
    if scheme is None:
        raise PlaceMismatch(f"place {name}: serial protocol {proto!r} is neither raw nor rfc2217")
    extra = r.params.get("extra") or {}
    # ser2net does not acknowledge RFC 2217 control (DTR/RTS) requests: pyserial must not wait for them
    query = "?ign_set_control" if scheme == "rfc2217" else ""
    return Endpoint(
        place=name,
        url=f"{scheme}://{host}:{port}{query}",
        exporter=r.exporter,
        host=str(extra.get("proxy") or host),
        resource=f"{r.exporter}/{r.group}/{r.cls}/{r.name}",
    )


def check_fit(snap: Snapshot, name: str, board: str) -> None:
    """Refuse, before anything is locked, a place that cannot be this board (offline places pass)."""
    place = snap.places[name]
    if place.tags.get("board") not in (None, board) or place_resources(snap, place):
        endpoint(snap, name, board, resolve=False)


def available(snap: Snapshot, name: str) -> bool:
    """True when every resource the place matches is online (its exporter is connected)."""
    place = snap.places.get(name)
    if place is None:
        return False
    res = place_resources(snap, place)
    return bool(res) and all(r.avail for r in res)
