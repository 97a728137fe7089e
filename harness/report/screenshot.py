"""Screenshot of an HTML report in headless Chromium, for a README (no network: every request aborted).

    python -m harness.report.screenshot leaderboard.html docs/leaderboard.png [--width 1200] [--height 900]
        [--colors 64]

Needs ``playwright`` (Python package only; never ``playwright install``) and a system Chromium
(Debian: ``apt-get install chromium``); ``FRUGALBENCH_CHROMIUM`` overrides its path.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from .plots import RendererMissing

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """The system Chromium, or a clear error saying how to get one."""
    path = (
        os.environ.get("FRUGALBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        raise RendererMissing("no Chromium found: `apt-get install chromium` or set FRUGALBENCH_CHROMIUM")
    return path


def screenshot(
    html: Path, png: Path, *, width: int = 1200, height: int = 900, full_page: bool = False, colors: int = 0
) -> Path:
    """Open ``html`` from disk with all other requests aborted and save a PNG of the viewport."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RendererMissing(
            "screenshots need `pip install playwright` (the browser comes from apt)"
        ) from None
    url = html.resolve().as_uri()

    def gate(route: Any) -> None:
        route.continue_() if route.request.url == url else route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", gate)
            page.goto(url)
            png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png), full_page=full_page)
        finally:
            browser.close()
    if colors:
        _quantize(png, colors)
    return png


def _quantize(png: Path, colors: int) -> None:
    """Shrink a screenshot to a ``colors``-entry palette (Pillow, which matplotlib brings)."""
    try:
        from PIL import Image
    except ImportError:
        raise RendererMissing("--colors needs Pillow: `pip install pillow`") from None
    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--full-page", action="store_true")
    ap.add_argument("--colors", type=int, default=0, help="quantize to this many colours (smaller file)")
    a = ap.parse_args(argv)
    screenshot(a.html, a.png, width=a.width, height=a.height, full_page=a.full_page, colors=a.colors)
    print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
