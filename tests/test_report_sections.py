"""Report rows and text outputs: technique summary, budgets, embodied share, labels, grid factors, Markdown."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_fixtures import EVIL_TASK, make_db, rows

from harness.errors import ConfigError
from harness.report import FORMATS, render_db
from harness.report.embodied import EmbodiedProfile, _boavizta_data_dir, boavizta_iot_kg, load_profiles
from harness.report.label import short, svg_label, write_labels
from harness.report.sections import from_db
from harness.results.carbon import grid_factor


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "r.sqlite")


def test_grid_factors_come_from_the_shipped_codecarbon_table() -> None:
    fr = grid_factor("FRA")
    assert 20 < fr.g_per_kwh < 150 and "CodeCarbon 3.3.2" in fr.source and "France 20" in fr.source
    assert grid_factor("france") == fr
    ca = grid_factor("USA-CA")
    assert "eGRID2023" in ca.source and 100 < ca.g_per_kwh < 400
    assert "CO2 only" in grid_factor("CN-BJ").source
    world = grid_factor("WORLD")
    assert world.g_per_kwh == 475.0 and "IEA" in world.source and "2019" in world.source  # same value, cited
    assert grid_factor("FRA", 12.0, "my utility 2024").g_per_kwh == 12.0
    with pytest.raises(ConfigError, match="grid_factor_g_per_kwh"):
        grid_factor("ATLANTIS")


def test_technique_summary_and_accuracy_cost(db: Path) -> None:
    data = from_db(db)
    t = {(x["energy_class"], x["technique"]): x for x in data.techniques if x["task"] == "digits"}
    assert t[("estimate", "int8")]["best"] == "int8-static@cpu-litert"
    assert t[("estimate", "int8")]["accuracy_cost"] == pytest.approx(0.951 - 0.953)
    assert t[("estimate", "prune")]["passes_gate"] is False  # below the minimum: shown, never ranked
    assert t[("external", "int8")]["rank"] == 1


def test_budgets_say_which_variants_fit(db: Path) -> None:
    data = from_db(db)
    fits = {b["id"]: b["fits"] for b in data.budgets}
    # 2e-5 g per 1000 inferences = 1.516e-4 J per inference at 475 g/kWh
    assert fits["int8-static@mcu"] is True and fits["fp32@cpu-litert"] is True
    assert fits["fp32@cpu-ort"] is False
    assert all(b["task"] == "digits" for b in data.budgets)  # the other task has no budget
    (run,) = data.run_budgets
    assert run["budget_g"] == 0.5 and run["fits"] is (run["spent_g"] <= 0.5)
    assert set(run["by_class"]) == {"estimate", "external"}
    md = render_db(db, "md")
    assert "Carbon budget: 2e-05 gCO2e per 1000 inferences" in md and "Over budget: fp32@cpu-ort" in md


def test_embodied_shown_apart_from_use_phase(tmp_path: Path, db: Path) -> None:
    prof = tmp_path / "emb.toml"
    prof.write_text(
        '[targets.mcu]\nembodied_kgco2e = 2.0\nsource = "vendor PCF sheet, 2024"\nlifetime_years = 5\nduty = 0.5\n'
    )
    data = from_db(db, embodied=prof)
    e = {x["id"]: x for x in data.embodied}
    assert set(e) == {"fp32@mcu", "int8-static@mcu"}
    x = e["int8-static@mcu"]
    lifetime_inf = 5 * 365.25 * 86400 * 0.5 * (1 / 1.2e-3)
    assert x["embodied_g_per_1000"] == pytest.approx(1000 * 2000 / lifetime_inf)
    assert x["use_g_per_1000"] == pytest.approx(1000 * 6e-6 / 3.6e6 * 475)
    md = render_db(db, "md", embodied=prof)
    assert "never summed" in md and "vendor PCF sheet, 2024" in md
    html = render_db(db, "html", embodied=prof)
    assert "not summed" in html and "total" not in html.lower().split("embodied")[1][:300]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[targets.x]\nembodied_kgco2e = 1\nlifetime_years = 3\nduty = 1\n", "source"),
        ('[targets.x]\nembodied_kgco2e = 1\nsource = "s"\nlifetime_years = 3\nduty = 2\n', "duty"),
        ("[targets.x]\nkg = 1\n", "unknown keys"),
        ("[targets.x\n", "not valid TOML"),
    ],
)
def test_embodied_profile_errors_say_what_to_fix(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "e.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_profiles(p)


def test_boavizta_iot_blocks_when_the_package_data_is_there() -> None:
    if _boavizta_data_dir() is None:
        pytest.skip("pip install --no-deps boaviztapi (listed in .ci/install)")
    kg, src = boavizta_iot_kg({"processing": "HSL-1", "pcb": "HSL-1"})
    assert 0 < kg < 50 and "Boavizta" in src and "processing HSL-1" in src
    with pytest.raises(ConfigError, match="known"):
        boavizta_iot_kg({"processing": "HSL-9"})


@given(
    kg=st.floats(0.01, 1000),
    life=st.floats(0.1, 20),
    duty=st.floats(0.01, 1),
    ips=st.floats(0.1, 1e6),
)
def test_embodied_share_scales_inversely_with_use(kg: float, life: float, duty: float, ips: float) -> None:
    p = EmbodiedProfile("t", kg, "s", life, duty)
    g = p.g_per_1000(ips)
    assert g is not None and g > 0
    assert EmbodiedProfile("t", kg, "s", life * 2, duty).g_per_1000(ips) == pytest.approx(g / 2)
    assert p.g_per_1000(0) is None


def test_labels_grade_within_task_and_class(tmp_path: Path, db: Path) -> None:
    labs = {(x["task"], x["id"]): x for x in from_db(db).labels}
    assert labs[("digits", "prune-90@cpu-litert")]["grade"] == "A"  # lowest energy of its class
    assert labs[("digits", "int8-static@cpu-ort")]["grade"] == "E"
    # the external class has two rows: too few for five bands, so no grade (and the card says so)
    assert labs[("digits", "int8-static@mcu")]["grade"] is None
    assert labs[("digits", "fp32@mcu")]["grade"] is None
    assert "no grade" in "".join(ET.fromstring(svg_label(labs[("digits", "fp32@mcu")])).itertext())
    lab = labs[(EVIL_TASK, "fp32@cpu-ort")]
    root = ET.fromstring(svg_label(lab))  # well-formed despite the hostile name
    assert short(EVIL_TASK, 26) in "".join(root.itertext())  # shown as text, cut to fit the card
    files = write_labels(list(labs.values())[:2], tmp_path / "labels")
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == 2 and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in pngs)


def test_markdown_gains_sections_and_png_plots(tmp_path: Path, db: Path) -> None:
    out = tmp_path / "board.md"
    md = render_db(db, "md", output=out)
    assert "### Per technique" in md and "Energy grades" in md and "## Carbon budget of the run" in md
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(links) == 6
    for link in links:
        assert (tmp_path / link).read_bytes()[:4] == b"\x89PNG"
    assert "<script>" not in md  # escaped in Markdown too


def test_every_format_renders_and_never_claims_neutrality(db: Path) -> None:
    for fmt in FORMATS.names():
        text = render_db(db, fmt)
        assert text and " ".join(("carbon", "neutral")) not in text.lower()  # a claim we never make
    assert len(json.loads(render_db(db, "json"))["results"]) == len(rows())


def test_plain_registry_call_still_works(db: Path) -> None:
    data = from_db(db)
    page = FORMATS.get("html")(data.board, data.skipped)
    assert page.startswith("<!doctype html>") and "Content-Security-Policy" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


_VALUE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: repr(float(x))),
    st.integers(-5, 50).map(str),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters='"\\\n\r'), max_size=12).map(
        lambda s: f'"{s}"'
    ),
)


@settings(deadline=None)  # file I/O per example: slow on a loaded CI machine
@given(
    fields=st.dictionaries(
        st.sampled_from(["embodied_kgco2e", "source", "lifetime_years", "duty", "kg", "boavizta_iot"]),
        _VALUE,
        max_size=5,
    )
)
def test_embodied_parser_accepts_or_explains(fields: dict[str, str]) -> None:
    import tempfile

    text = "[targets.t]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "e.toml"
        p.write_text(text)
        try:
            prof = load_profiles(p).targets["t"]
        except ConfigError as e:
            assert str(p) in str(e)
        else:
            assert prof.kgco2e == float(fields["embodied_kgco2e"].strip('"'))
            assert prof.lifetime_years > 0 and 0 < prof.duty <= 1 and prof.source


def test_grid_table_builder_converts_and_keeps_provenance(tmp_path: Path) -> None:
    from harness.results.carbon_data import LB_PER_MWH_TO_G_PER_KWH, build_table

    infra = tmp_path / "data" / "private_infra"
    (infra / "2023").mkdir(parents=True)
    (infra / "global_energy_mix.json").write_text(
        json.dumps(
            {
                "FRA": {"carbon_intensity": 56.0, "country_name": "France", "year": 2023},
                "XXX": {"carbon_intensity": None, "country_name": "Nowhere", "year": 2020},
            }
        )
    )
    (infra / "2023" / "usa_emissions.json").write_text(
        json.dumps({"_source": {"year": 2023}, "california": {"emissions": 400.0, "regionCode": "CA"}})
    )
    (infra / "carbon_intensity_per_source.json").write_text(json.dumps({"world_average": 475}))
    (infra / "nordic_emissions.json").write_text(
        json.dumps({"data": {"SE3": {"emission_factor": 27.0, "year": 2025, "description": "Sweden 3"}}})
    )
    (infra / "2023" / "china_provincial_emissions.json").write_text(
        json.dumps(
            {
                "metadata": {"year": 2023},
                "data": {"CN-BJ": {"emission_factor": 555.4, "description": "Beijing"}},
            }
        )
    )
    t = build_table(tmp_path, "9.9")
    f = t["factors"]
    assert set(f) == {"WORLD", "FRA", "USA-CA", "SE3", "CN-BJ"}  # no intensity, no entry
    assert f["USA-CA"]["g_per_kwh"] == pytest.approx(400.0 * LB_PER_MWH_TO_G_PER_KWH, abs=1e-3)
    assert f["FRA"]["aliases"] == ["FRANCE"] and f["CN-BJ"]["year"] == 2023
    assert t["codecarbon_version"] == "9.9" and all(
        "file" in s and "origin" in s for s in t["sources"].values()
    )


@pytest.mark.parametrize("n", [1, 2, 7])
def test_svg_plot_draws_every_point_even_in_degenerate_groups(n: int) -> None:
    from harness.report.plots import colour_map, svg_plot

    pts = [
        {
            "id": f"v{i}@t",
            "x": 1e-4,
            "y": 0.5 + 0.01 * (i % 2),
            "technique": "int8",
            "target": "t",
            "passes_gate": True,
        }
        for i in range(n)
    ]
    plot = {
        "task": "reg",
        "energy_class": "external",
        "kind": "accuracy_energy",
        "xlabel": "energy per inference (J)",
        "ylabel": "mae",
        "min_y": 0.6,
        "min_label": "maximum",
        "points": pts,
        "front": [pts[0]["id"]],
    }
    root = ET.fromstring(svg_plot(plot, colour_map(["int8"])))
    ns = "{http://www.w3.org/2000/svg}"
    circles = root.findall(f"{ns}circle")
    assert len(circles) == n
    assert all(0 <= float(c.get("cx")) <= 460 and 0 <= float(c.get("cy")) <= 300 for c in circles)
    assert root.find(f"{ns}polyline").get("data-n") == "1"
    assert "maximum" in "".join(root.itertext())


def test_embodied_profiles_by_board_and_by_target(tmp_path: Path, db: Path) -> None:
    prof = tmp_path / "emb.toml"
    prof.write_text(
        '[boards."Test CPU"]\nembodied_kgco2e = 300.0\nsource = "desktop, stated"\nlifetime_years = 4\nduty = 0.1\n'
        '[targets.mcu]\nembodied_kgco2e = 2.0\nsource = "board PCF"\nlifetime_years = 5\nduty = 1\n'
    )
    src = {x["id"]: x["source"] for x in from_db(db, embodied=prof).embodied if x["task"] == "digits"}
    assert src["int8-static@mcu"] == "board PCF" and src["fp32@cpu-ort"] == "desktop, stated"
    profiles = load_profiles(prof)
    pi = {"board_model": "Test CPU Rev 1.4"}
    assert profiles.find("elsewhere", pi) is profiles.boards["Test CPU"]  # model prefix
    assert profiles.find("elsewhere", {"board_profile": "boards/raspberry-pi-5.toml"}) is None
    (tmp_path / "bad.toml").write_text("[target.x]\nduty = 1\n")
    with pytest.raises(ConfigError, match="unknown tables"):
        load_profiles(tmp_path / "bad.toml")


_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@settings(deadline=None, max_examples=60)
@given(task=_NAME, variant=_NAME, target=_NAME)
def test_any_name_stays_text_in_html(task: str, variant: str, target: str) -> None:
    from dataclasses import replace
    from html.parser import HTMLParser

    from report_fixtures import record

    from harness.report.html import to_html
    from harness.results.rank import leaderboard

    r = replace(record(task, variant, "int8", target), id=1, run_id=1, created=0.0)
    page = to_html(leaderboard([r]), [])

    class Probe(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.h2: list[str] = []
            self._in_h2 = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self._in_h2 = tag == "h2"

        def handle_endtag(self, tag: str) -> None:
            self._in_h2 = False

        def handle_data(self, data: str) -> None:
            if self._in_h2:
                self.h2.append(data)

    p = Probe()
    p.feed(page)
    assert p.tags.count("script") == 1 and "img" not in p.tags and "iframe" not in p.tags
    assert "".join(p.h2).replace("\r\n", "\n").replace("\r", "\n") == task.replace("\r\n", "\n").replace(
        "\r", "\n"
    )


def test_empty_database_renders_every_format(tmp_path: Path) -> None:
    db = make_db(tmp_path / "empty.sqlite", [])
    for fmt in FORMATS.names():
        assert render_db(db, fmt) is not None
    assert "variant has no .tflite file" in render_db(db, "html")


def test_per_model_view_lists_each_variant_across_targets_and_where_it_does_not_fit(tmp_path: Path) -> None:
    from report_fixtures import _row

    from harness.results.record import Result
    from harness.results.store import Store

    result_rows = [
        _row("digits", "int8-static", "int8", "qemu-m4", lat=8e-5, e=2.6e-6, cls="simulated"),
        _row("digits", "int8-static", "int8", "qemu-m3", lat=2.4e-4, e=None, cls="simulated"),
        _row("digits", "fp32", "fp32", "cpu-ort", lat=1e-5),  # on one target only: not in the view
    ]
    path = make_db(tmp_path / "m.sqlite", result_rows)
    too_big = "model blob is 26136 bytes but board qemu-microbit has 8192 bytes of model RAM (flash 262144, RAM 16384)"
    with Store.open(path) as s:
        rid = s.runs()[0]["id"]
        s.save_result(
            Result(suite="fixture", task="digits", variant="int8-static", target="qemu-m0", status="failed",
                   reason=too_big, run_id=rid, job_key="m0"),
            [],
        )  # fmt: skip
    models = [x for x in from_db(path).models if x["task"] == "digits"]
    assert [(x["variant"], x["target"], x["status"]) for x in models] == [
        ("int8-static", "qemu-m4", "runs"),
        ("int8-static", "qemu-m3", "runs"),
        ("int8-static", "qemu-m0", "does not fit"),
    ]
    assert models[1]["energy_per_inference_j"] is None and "8192 bytes of model RAM" in models[2]["reason"]
    md = render_db(path, "md")
    assert "### Per model across targets" in md and "does not fit" in md
