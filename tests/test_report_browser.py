"""The HTML leaderboard opened in a real headless Chromium (Playwright, Debian's /usr/bin/chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import EVIL_TASK, EVIL_VARIANT, make_db, rows

from harness.report import render_db
from harness.report.screenshot import CHROMIUM_ARGS as ARGS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "ci-artifacts"

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "needs Debian's chromium: apt-get install chromium (listed in .ci/install)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def page_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("html")
    db = make_db(d / "r.sqlite")
    out = d / "leaderboard.html"
    out.write_text(render_db(db, "html"), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=list(ARGS))
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, page_html: Path) -> Iterator[Any]:
    """The page, with every request recorded and anything but the file itself aborted."""
    pg = browser.new_page(viewport={"width": 1300, "height": 900})
    url = page_html.as_uri()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))

    def gate(route: Any) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    pg.route("**/*", gate)
    pg.goto(url)
    pg.wait_for_load_state("load")
    pg.requests, pg.errors, pg.url_ = requests, errors, url  # type: ignore[attr-defined]
    yield pg
    pg.close()


def visible_ids(pg: Any, table: str = "table.board") -> list[str]:
    return pg.eval_on_selector_all(
        f"{table} tr.row", "rs => rs.filter(r => r.offsetParent !== null).map(r => r.dataset.id)"
    )


def nth(table: Any, key: str) -> int:
    """The 1-based position of the column with ``data-key`` ``key`` (for CSS ``nth-child``)."""
    keys = table.locator("thead th").evaluate_all("ths => ths.map(th => th.dataset.key)")
    return keys.index(key) + 1


def test_tables_render_the_stored_rows(page: Any) -> None:
    stored = rows()
    assert len(page.query_selector_all("tr.row")) == len(stored)
    for task in {r["task"] for r in stored}:
        want = sorted(f"{r['variant']}@{r['target']}" for r in stored if r["task"] == task)
        sec = page.locator("section.task", has=page.locator("h2", has_text=task)).first
        got = sorted(sec.locator("tr.row").evaluate_all("rs => rs.map(r => r.dataset.id)"))
        assert got == want
    below = page.locator("table.board.below tr.row").evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert below == ["prune-90@cpu-litert"]
    # one stored value, exactly as stored
    table = page.locator("table.board").first
    cell = page.locator(f'table.board tr.row[data-id="fp32@mcu"] td:nth-child({nth(table, "e")})')
    assert float(cell.get_attribute("data-v")) == pytest.approx(2.0e-5)
    assert cell.inner_text() == "20.0 µJ"  # three significant figures
    p50 = page.locator(f'table.board tr.row[data-id="fp32@mcu"] td:nth-child({nth(table, "p50")})')
    assert p50.inner_text() == "4.00 ms"
    assert "variant has no .tflite file" in page.inner_text("body")
    assert page.errors == []


def test_sorting_by_clicking(page: Any) -> None:
    table = page.locator('table.board.ranked[data-task="digits"]')
    header = table.locator('th[data-key="e"]')

    def energies() -> list[float]:
        return [
            float(v)
            for v in table.locator(f"tbody tr td:nth-child({nth(table, 'e')})").evaluate_all(
                "tds => tds.map(td => td.dataset.v)"
            )
        ]

    header.click()
    asc = energies()
    assert asc == sorted(asc) and len(asc) == 6
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert energies() == sorted(asc, reverse=True)
    table.locator('th[data-key="variant"]').click()
    names = table.locator(f"tbody tr td:nth-child({nth(table, 'variant')})").evaluate_all(
        "tds => tds.map(td => td.textContent)"
    )
    assert names == sorted(names)
    table.locator('th[data-key="ips"]').focus()  # keyboard: Enter sorts too
    page.keyboard.press("Enter")
    ips = [
        float(v)
        for v in table.locator(f"tbody tr td:nth-child({nth(table, 'ips')})").evaluate_all(
            "tds => tds.map(td => td.dataset.v)"
        )
    ]
    assert ips == sorted(ips)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("target", "cpu-litert", "target"),
        ("technique", "int8", "technique"),
        ("class", "external", "energy_class"),
    ],
)
def test_filtering_by_clicking(page: Any, key: str, value: str, field: str) -> None:
    page.select_option(f"#filter-{key}", value)
    want = sorted(f"{r['variant']}@{r['target']}" for r in rows() if r[field] == value)
    got = sorted(visible_ids(page))
    assert got == want and got
    assert page.inner_text("#shown") == str(len(want))
    cards = page.eval_on_selector_all("figure.card", "fs => fs.filter(f => f.offsetParent !== null).length")
    assert cards == len(want)  # the energy labels follow the same filter
    dimmed = page.eval_on_selector_all(".plot circle.pt:not(.dim)", "cs => cs.length")
    assert dimmed >= 1
    page.click("#reset")
    assert len(visible_ids(page)) == len(rows())


def test_plots_show_every_point_and_the_front(page: Any) -> None:
    plots = page.locator("svg.plot")
    # digits has two classes (estimate, external), the hostile task one: 3 groups x 2 kinds
    assert plots.count() == 6
    for i in range(plots.count()):
        svg = plots.nth(i)
        task, cls = svg.get_attribute("data-task"), svg.get_attribute("data-class")
        ids = sorted(
            f"{r['variant']}@{r['target']}" for r in rows() if r["task"] == task and r["energy_class"] == cls
        )
        got = sorted(svg.locator("circle.pt").evaluate_all("cs => cs.map(c => c.dataset.id)"))
        assert got == ids
        front = svg.locator("polyline.front")
        assert front.count() == 1
        n_front = int(front.get_attribute("data-n"))
        assert n_front == svg.locator("circle.on-front").count() >= 1
        box = svg.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100
        for c in svg.locator("circle.pt").all():  # every point is drawn inside the plot
            b = c.bounding_box()
            assert b and box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1


def test_no_request_leaves_the_page(page: Any) -> None:
    page.locator("table.board th.sortable").first.click()
    page.locator("details summary").first.click()
    page.select_option("#filter-technique", "fp32")
    page.wait_for_timeout(200)
    assert page.requests == [page.url_]


def test_hostile_names_are_text_and_never_run(page: Any) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.locator("section.task h2", has_text="<script>").inner_text() == EVIL_TASK
    assert page.locator("img").count() == 0
    assert (
        page.locator(f'tr.row[data-id="{EVIL_VARIANT.replace(chr(34), chr(92) + chr(34))}@cpu-ort"]').count()
        == 1
    )
    assert EVIL_VARIANT in page.inner_text("body")
    assert "<b>bold?</b>" in page.inner_text("body")
    # the only script on the page is ours
    assert page.locator("script").count() == 1


def test_provenance_on_demand_and_screenshot(page: Any) -> None:
    det = page.locator('tr.row[data-id="int8-static@mcu"] details')
    assert not det.locator("dl").is_visible()
    det.locator("summary").click()
    text = det.locator("dl").inner_text()
    for part in ("1.32.0", "avx2", "lpm01a", "3V3 rail", "gpio", "abc1234", "±"):
        assert part in text
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-leaderboard.png"), full_page=True)
    assert (ARTIFACTS / "report-leaderboard.png").stat().st_size > 10_000


def test_label_downloads_as_svg_and_png(page: Any, tmp_path: Path) -> None:
    card = page.locator('figure.card:has(svg[data-id="int8-static@cpu-litert"])')
    assert card.locator("svg").get_attribute("data-grade") == "A"
    two = page.locator('figure.card:has(svg[data-id="int8-static@mcu"])')  # a class of two rows
    assert two.locator("svg").get_attribute("data-grade") == "" and "no grade" in two.inner_text()
    with page.expect_download() as d:
        card.locator("a[download]").click()
    svg = tmp_path / "l.svg"
    d.value.save_as(svg)
    assert svg.read_text().startswith("<svg") and "int8-static" in svg.read_text()
    with page.expect_download() as d:
        card.locator("button.png").click()
    png = tmp_path / "l.png"
    d.value.save_as(png)
    assert d.value.suggested_filename == "digits_int8-static_cpu-litert.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert [u for u in page.requests if not u.startswith("data:")] == [page.url_]


def test_output_is_deterministic(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.sqlite")
    assert render_db(db, "html") == render_db(db, "html")
