"""The board agent (``board_agent.py``, pushed to Linux boards) and its host-side client.

``board_agent.py`` is a stand-alone script (stdlib + numpy + one runtime) and never imports
``harness``; :mod:`harness.agent.client` speaks its line protocol from the host, and
:mod:`harness.agent.session` opens the SSH connection, checks host keys and pushes files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

AGENT_FILE = Path(__file__).with_name("board_agent.py")


def agent_bytes() -> bytes:
    """The agent script as it is pushed to boards."""
    return AGENT_FILE.read_bytes()


def agent_sha256() -> str:
    return hashlib.sha256(agent_bytes()).hexdigest()


__all__ = ["AGENT_FILE", "agent_bytes", "agent_sha256"]
