"""The installed package works outside the checkout: packaged suites and board profiles, firmware built
into the cache, ``frugalbench suites`` and ``frugalbench setup``; and (slow) a real wheel in a fresh venv
runs the quick suite from an empty folder."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import setup as setup_cli
from harness.cli.main import app
from harness.errors import ConfigError, FrugalbenchError
from harness.mcu import build
from harness.mcu.board import boards_dir, load_board, resolve_board
from harness.pipeline.variants import default_cache_dir
from harness.suite import load_suite, packaged_suites, resolve_suite, suites_dir

ROOT = Path(__file__).resolve().parents[1]
HAVE_MCU_TOOLS = all(shutil.which(t) for t in ("qemu-system-arm", "arm-none-eabi-gcc", "make"))


# ------------------------------------------------------------------ suites by name


def test_packaged_suite_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_suite("quick") == suites_dir() / "quick.toml"
    s = load_suite("quick")
    assert s.suite.name == tomllib.loads((suites_dir() / "quick.toml").read_text())["suite"]["name"]
    assert {"quick", "default"} <= set(packaged_suites())


def test_a_file_wins_over_a_packaged_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").write_text("")
    assert resolve_suite("quick") == Path("quick")


@pytest.mark.parametrize("arg", ["no-such-suite", "benches/nope.toml"])
def test_unknown_suite_lists_packaged_ones(arg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="not found") as e:
        load_suite(arg)
    assert arg in str(e.value)
    for name in packaged_suites():
        assert name in str(e.value)


def test_suites_command_lists_name_path_and_description(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["suites"])
    assert r.exit_code == 0, r.output
    for name, path in packaged_suites().items():
        desc = tomllib.loads(path.read_text())["suite"]["description"]
        assert any(line.startswith(name) and desc in line for line in r.output.splitlines()), r.output
        assert str(path) in r.output


# ------------------------------------------------------------------ board profiles


def test_board_profiles_found_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_board("qemu-mps2-an386").path == str(boards_dir() / "qemu-mps2-an386.toml")
    # the checkout-relative spelling used in suites and docs works outside the checkout too
    assert resolve_board("boards/raspberry-pi-5.toml") == boards_dir() / "raspberry-pi-5.toml"
    own = tmp_path / "mine.toml"
    own.write_text((boards_dir() / "qemu-mps2-an386.toml").read_text())
    assert resolve_board("mine.toml") == Path("mine.toml")


def test_unknown_board_lists_the_packaged_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="known boards: ") as e:
        resolve_board("no-such-board")
    for p in boards_dir().glob("*.toml"):
        assert p.stem in str(e.value)
    assert "qemu-mps2-an386" in str(e.value)


def test_stale_editable_install_reads_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install made before the data packages existed cannot import them: the checkout's
    folders are read instead of failing."""

    def missing(package: str) -> None:
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(importlib.resources, "files", missing)
    assert boards_dir() == ROOT / "boards"
    assert suites_dir() == ROOT / "benches"


# ------------------------------------------------------------------ firmware in the cache


def test_firmware_cache_follows_the_model_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRUGALBENCH_CACHE", str(tmp_path / "c"))
    assert build.cache_root() == default_cache_dir() / "firmware" == tmp_path / "c" / "firmware"
    monkeypatch.delenv("FRUGALBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build.cache_root() == default_cache_dir() / "firmware" == tmp_path / "xdg" / "frugalbench" / "firmware"


def test_build_key_covers_every_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "_compiler_version", lambda cc: "gcc 1")
    files = build.source_files()
    assert "Makefile" in files and "src/main.c" in files
    assert any(k.startswith("boards/qemu-mps2-an386/") for k in files)
    assert not any(k.startswith("build/") for k in files)
    key = build.build_key(files, "qemu-mps2-an386", False, None)
    assert key == build.build_key(dict(files), "qemu-mps2-an386", False, None)
    changed = {**files, "src/main.c": files["src/main.c"] + b"\n"}
    others = [
        build.build_key(changed, "qemu-mps2-an386", False, None),
        build.build_key(files, "nucleo-l4r5zi", False, None),
        build.build_key(files, "qemu-mps2-an386", True, None),
        build.build_key(files, "qemu-mps2-an386", False, b"blob"),
    ]
    monkeypatch.setattr(build, "_compiler_version", lambda cc: "gcc 2")
    others.append(build.build_key(files, "qemu-mps2-an386", False, None))
    assert len({key, *others}) == 6


@pytest.mark.slow
@pytest.mark.skipif(build.toolchain_missing() is not None, reason=str(build.toolchain_missing()))
def test_concurrent_builds_into_the_cache(tmp_path: Path) -> None:
    """Two processes build the same firmware at once: one complete build, the sources untouched."""
    before = sorted(p for p in build.firmware_dir().rglob("*") if "__pycache__" not in p.parts)
    env = {**os.environ, "FRUGALBENCH_CACHE": str(tmp_path / "c")}
    code = "from harness.mcu.build import build_firmware; print(build_firmware('qemu-mps2-an386'))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]
    elf = Path(outs[0])
    assert elf.parent.parent == tmp_path / "c" / "firmware"
    assert elf.read_bytes()[:4] == b"\x7fELF"
    assert sorted(p.name for p in elf.parent.iterdir()) == sorted(build.OUTPUTS)
    # no half-built folders left behind, nothing written beside the sources
    assert [p.name for p in elf.parent.parent.iterdir() if p.is_dir()] == [elf.parent.name]
    assert sorted(p for p in build.firmware_dir().rglob("*") if "__pycache__" not in p.parts) == before


# ------------------------------------------------------------------ frugalbench setup


def _fake_debian(tmp_path: Path, installed: list[str]) -> Path:
    """``dpkg-query`` and ``apt-get`` stand-ins on PATH: apt-get logs its calls and 'installs'."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "installed"
    state.write_text("".join(f"{p}\n" for p in installed))
    (bin_dir / "dpkg-query").write_text(
        f'#!/bin/sh\npkg="$3"\nif grep -qx "$pkg" {state}; then printf "install ok installed"; exit 0; fi\n'
        'echo "dpkg-query: no packages found matching $pkg" >&2; exit 1\n'
    )
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {tmp_path / "apt.log"}\n'
        f'case " $* " in *" install "*) for a in "$@"; do case "$a" in -*|install|*=*) ;; *) echo "$a" >> {state};; '
        "esac; done;; esac\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def test_setup_as_root_installs_only_the_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _fake_debian(tmp_path, installed=["make", "gcc-arm-none-eabi"])
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(setup_cli, "_is_root", lambda: True)
    r = CliRunner().invoke(app, ["setup"])
    assert r.exit_code == 0, r.output
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith("noninteractive ") and " update" in calls[0]
    assert calls[1].startswith("noninteractive ") and " install -y " in calls[1]
    assert calls[1].endswith(" qemu-system-arm libnewlib-arm-none-eabi")
    assert "MCU target ready" in r.output
    # a second run finds everything installed and runs nothing
    r = CliRunner().invoke(app, ["setup"])
    assert r.exit_code == 0 and "ready" in r.output
    assert len((tmp_path / "apt.log").read_text().splitlines()) == 2


def test_setup_not_root_prints_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _fake_debian(tmp_path, installed=["make"])
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(setup_cli, "_is_root", lambda: False)
    r = CliRunner().invoke(app, ["setup"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "apt.log").exists()
    lines = r.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends "
        "qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi"
    )


def test_setup_apt_failure_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _fake_debian(tmp_path, installed=[])
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package' >&2\nexit 100\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(setup_cli, "_is_root", lambda: True)
    with pytest.raises(FrugalbenchError, match="exit 100"):
        CliRunner().invoke(app, ["setup"], catch_exceptions=False)


# ------------------------------------------------------------------ the wheel, outside the checkout


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )
    return Path(out.stdout.strip())


def _files(d: Path) -> set[Path]:
    return {p for p in d.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.slow
def test_wheel_runs_the_quick_suite_outside_the_checkout(tmp_path: Path) -> None:
    # 1. the wheel (pip fetches the build backend from the package index; no other network)
    # built from a copy: setuptools' in-tree build/ folder would keep files since removed from the checkout
    src = tmp_path / "src"
    junk = (".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "*.sqlite*")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*junk))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(wheels)],
        check=True, timeout=600,
    )
    (wheel,) = wheels.glob("frugalbench-*.whl")

    # 2. a fresh venv with only the wheel installed; the dependencies (numpy, onnxruntime...) are read from
    # this test's environment through a .pth added afterwards. That path is not a site dir, so its .pth
    # files (the editable install's finder) are not run: `harness` must come from the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=300,
    )
    site = _site_packages(py)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_frugalbench_test_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # the firmware goes to a fresh cache; trained models are shared with the test session's cache
    cache = tmp_path / "cache"
    cache.mkdir()
    shared = Path(os.environ.get("FRUGALBENCH_CACHE") or default_cache_dir())
    for sub in ("base", "variants"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(shared / sub)
    env["FRUGALBENCH_CACHE"] = str(cache)
    empty = tmp_path / "empty"
    empty.mkdir()

    where = subprocess.run(
        [str(py), "-c", "import harness, frugalbench_suites as s, frugalbench_boards as b, frugalbench_models as m;"
         "print(harness.__file__); print(s.__file__); print(b.__file__); print(m.__file__)"],
        cwd=empty, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert len(where) == 4
    for f in where:
        assert Path(f).is_relative_to(site), f"{f} is not the wheel's copy (in {site})"
    packaged = _files(site / "frugalbench_boards") | _files(site / "frugalbench_suites")

    # 3. `frugalbench suites` lists the packaged quick suite
    fb = venv / "bin" / "frugalbench"
    r = subprocess.run([str(fb), "suites"], cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("quick ") for line in r.stdout.splitlines()), r.stdout
    assert str(site / "frugalbench_suites" / "quick.toml") in r.stdout

    # 4. the quick suite by name, from an empty folder
    r = subprocess.run(
        [str(fb), "run", "quick", "--db", "r.sqlite", "--no-report"],
        cwd=empty, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    suite = tomllib.loads((site / "frugalbench_suites" / "quick.toml").read_text())
    with sqlite3.connect(empty / "r.sqlite") as db:
        runs = db.execute("SELECT id, suite, suite_path, status FROM runs").fetchall()
        assert len(runs) == 1
        run_id, name, path, status = runs[0]
        assert (name, status) == (suite["suite"]["name"], "done")
        assert Path(path) == site / "frugalbench_suites" / "quick.toml"
        rows = db.execute(
            "SELECT task, variant, target, status, reason, accuracy, latency_p50_s FROM results WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    got = {(t, v, g): (s, why, acc, p50) for t, v, g, s, why, acc, p50 in rows}
    loaded = load_suite(site / "frugalbench_suites" / "quick.toml")  # the jobs the suite asks for
    expected = {
        (t.name, f"{recipe}:{v.name}" if t.several_bases else v.name, g["name"])
        for t in loaded.tasks
        for recipe, _ in t.base_models
        for v in loaded.variants_for(t.name, recipe)
        for g in loaded.targets
    }
    assert set(got) == expected
    for (task, variant, target), (status, why, acc, p50) in got.items():
        kind = next(g["kind"] for g in suite["targets"] if g["name"] == target)
        if kind == "cpu":
            assert status == "done", (task, variant, target, why)
            assert acc is not None and p50 is not None and p50 > 0
    mcu = {k: v for k, v in got.items() if k[2] == "qemu-m4"}
    if HAVE_MCU_TOOLS:
        done = [k for k, v in mcu.items() if v[0] == "done"]
        assert {k[1].rsplit(":", 1)[-1] for k in done} == {"int8-static"}, mcu
        elfs = list((cache / "firmware").glob("qemu-mps2-an386-*/fw.elf"))
        assert len(elfs) == 1 and elfs[0].read_bytes()[:4] == b"\x7fELF"
    else:
        assert all(v[0] == "skipped" and v[1] for v in mcu.values()), mcu

    # 5. nothing was written into the installed package
    assert _files(site / "frugalbench_boards") | _files(site / "frugalbench_suites") == packaged
