"""frugalbench: benchmark suite for frugal inference on embedded and edge hardware."""

__version__ = "0.1.0"
