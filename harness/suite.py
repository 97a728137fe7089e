"""Suite files (``benches/*.toml``): tasks, variants, targets, meter, run rules, carbon settings.

A suite is a file, or the name of a suite that ships with the package (``quick`` -> the packaged
``benches/quick.toml``; setup.py installs ``benches/`` as ``frugalbench_suites``, found with
``importlib.resources``), so the packaged suites run from any folder.

Validated on load. An unknown key, a wrong type or a missing file gives a :class:`ConfigError` naming
the file, the line, the key and what is expected. Target and meter tables are validated against the
``Config`` model of the registered class, variant steps against the compressor's signature.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .sysinfo import data_dir

METRICS = ("accuracy", "top_k", "auc", "macro_f1", "mae")
MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds in [0, 2**32)
HOUR, WEEK = 3600.0, 7 * 24 * 3600.0


def check_name(v: str) -> str:
    """A task, variant or target name: 1 to 100 printable characters (they label results and files)."""
    if not v.strip():
        raise ValueError("name is empty; give a short label such as \"mlp\" or \"int8\"")
    if len(v) > 100:
        raise ValueError(f"name is {len(v)} characters long; keep it to 100")
    if any(not c.isprintable() for c in v):
        raise ValueError("name holds control characters (newline, tab...); use printable characters only")
    return v


class _Strict(BaseModel):
    # allow_inf_nan=False: every number of a suite is finite (nan/inf would poison gates and reports)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SuiteInfo(_Strict):
    name: str
    description: str = ""


class RunRules(_Strict):
    """How long and how often to measure."""

    warmup_s: float = Field(0.2, ge=0, le=HOUR, allow_inf_nan=False)
    window_s: float = Field(1.0, gt=0, le=HOUR, allow_inf_nan=False, description="length of one timed window")
    min_windows: int = Field(3, ge=1, le=10_000)
    max_windows: int = Field(10, ge=1, le=10_000)
    ci_target: float = Field(
        0.01, gt=0, le=1, allow_inf_nan=False, description="95 % CI half-width of the median, relative"
    )
    time_budget_s: float = Field(
        600.0, gt=0, le=WEEK, allow_inf_nan=False, description="per target and variant, windows included"
    )
    idle_s: float = Field(
        0.0, ge=0, le=HOUR, allow_inf_nan=False, description="idle window before the timed windows (P_idle)"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _order(self) -> RunRules:
        if self.max_windows < self.min_windows:
            raise ValueError("max_windows must be >= min_windows")
        return self


class Carbon(_Strict):
    """CO2e = E · PUE · FE. ``region`` picks FE from the built-in table; or give FE and its source."""

    pue: float = Field(1.0, ge=1.0)
    region: str | None = "WORLD"
    grid_factor_g_per_kwh: float | None = Field(None, ge=0)
    grid_factor_source: str | None = None
    budget_g: float | None = Field(None, ge=0, description="carbon budget for the whole run")

    @model_validator(mode="after")
    def _source(self) -> Carbon:
        if self.grid_factor_g_per_kwh is not None and not self.grid_factor_source:
            raise ValueError("grid_factor_g_per_kwh needs grid_factor_source (where the figure comes from)")
        return self


class Task(_Strict):
    """A task: one recipe or several (base models that compete under one minimum), or a user's model
    file + dataset file.

    With ``recipes`` (several base models) ``recipe_params`` maps each recipe name to its parameters.
    A ``performance_only`` task (synthetic data: its accuracy means nothing) needs no minimum and is
    never ranked by accuracy per joule, only listed by latency and energy.
    """

    name: str
    recipe: str | None = None
    recipes: list[str] | None = Field(None, description="several base models on one leaderboard")
    recipe_params: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    data: str | None = None
    input: dict[str, Any] = Field(default_factory=dict, description="layout/preprocessing for user data")
    metric: Literal["accuracy", "top_k", "auc", "macro_f1", "mae"] = "accuracy"
    metric_params: dict[str, Any] = Field(default_factory=dict)
    min_accuracy: float | None = Field(
        None,
        description="minimum acceptable value of the metric (max for mae); required unless performance_only",
    )
    why_min: str = ""
    performance_only: bool = Field(
        False, description="synthetic data: list by latency/energy, never rank by accuracy"
    )
    budget_g_per_1000: float | None = Field(None, ge=0)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    _name = field_validator("name")(check_name)

    @model_validator(mode="after")
    def _one_source(self) -> Task:
        sources = [self.recipe is not None, self.recipes is not None, self.model is not None]
        if sum(sources) != 1:
            raise ValueError(
                "give exactly one of 'recipe' (a built-in base model), 'recipes' (several) or 'model' (a model file)"
            )
        if self.model is not None and self.data is None:
            raise ValueError("a task with 'model' needs 'data' (an .npz/.npy/.csv dataset file)")
        if self.min_accuracy is None and not self.performance_only:
            raise ValueError("min_accuracy is required (missing; or set performance_only = true for synthetic data)")
        if self.min_accuracy is not None:
            if self.metric == "mae":
                if self.min_accuracy < 0:
                    raise ValueError("min_accuracy of metric mae (the largest acceptable error) must be >= 0")
            elif not 0.0 <= self.min_accuracy <= 1.0:
                raise ValueError(
                    f"min_accuracy of metric {self.metric} must be between 0 and 1 (a fraction, not a percentage)"
                )
        if self.recipes is not None:
            if not self.recipes or len(set(self.recipes)) != len(self.recipes):
                raise ValueError("'recipes' needs one or more distinct recipe names")
            stray = sorted(set(self.recipe_params) - set(self.recipes))
            bad = [k for k, v in self.recipe_params.items() if not isinstance(v, dict)]
            if stray or bad:
                raise ValueError(
                    "with 'recipes', recipe_params maps each recipe name to its parameters, e.g. "
                    f"recipe_params = {{ {self.recipes[0]} = {{ ... }} }}; not recipes: {stray or bad}"
                )
        return self

    @property
    def base_models(self) -> list[tuple[str | None, dict[str, Any]]]:
        """``(recipe, params)`` of each base model (``(None, {})`` for a user's model file)."""
        if self.recipes is not None:
            return [(r, dict(self.recipe_params.get(r, {}))) for r in self.recipes]
        return [(self.recipe, dict(self.recipe_params) if self.recipe else {})]

    @property
    def several_bases(self) -> bool:
        """True when the task's variants come from more than one base model."""
        return len(self.base_models) > 1


class Step(BaseModel):
    """One compression step: ``technique`` plus its keyword parameters (checked by the compressor)."""

    model_config = ConfigDict(extra="allow", strict=True)
    technique: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class VariantSpec(_Strict):
    name: str
    technique: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    tasks: list[str] | None = Field(None, description="restrict to these tasks")
    recipes: list[str] | None = Field(None, description="restrict to these base models (recipe names)")

    _name = field_validator("name")(check_name)

    @model_validator(mode="after")
    def _shape(self) -> VariantSpec:
        if self.technique and self.steps:
            raise ValueError("give either 'technique' (+ 'params') or 'steps', not both")
        if not self.technique and not self.steps:
            raise ValueError("give 'technique' (e.g. \"fp32\", \"int8\") or 'steps'")
        if self.technique and self.technique != "fp32":
            self.steps = [Step(technique=self.technique, **self.params)]
        elif self.params:
            raise ValueError("'params' needs a technique other than fp32")
        return self

    @property
    def chain(self) -> list[tuple[str, dict[str, Any]]]:
        return [(s.technique, s.params) for s in self.steps]


class Suite(_Strict):
    suite: SuiteInfo
    run: RunRules = Field(default_factory=lambda: RunRules())
    carbon: Carbon = Field(default_factory=lambda: Carbon())
    meter: dict[str, Any] = Field(default_factory=lambda: {"kind": "auto"})
    tasks: list[Task]
    variants: list[VariantSpec]
    targets: list[dict[str, Any]]
    path: Path | None = None

    def n_builds(self) -> int:
        """How many base models and variants a run builds (for progress bars)."""
        return sum(1 + len(self.variants_for(t.name, r)) for t in self.tasks for r, _ in t.base_models)

    def variants_for(self, task: str, base_model: str | None = None) -> list[VariantSpec]:
        """The variants of ``task`` (built from ``base_model``, when given)."""
        return [
            v
            for v in self.variants
            if (v.tasks is None or task in v.tasks)
            and (base_model is None or v.recipes is None or base_model in v.recipes)
        ]


def _key_line(lines: list[str], start: int, end: int, keys: list[str]) -> int | None:
    """0-based line of the innermost of ``keys`` assigned in ``lines[start:end]``."""
    for key in reversed(keys):
        pat = re.compile(rf"^\s*(\[\[?)?\s*[\"']?{re.escape(key)}[\"']?\s*(=|\]|\.)")
        for n in range(start, end):
            if pat.match(lines[n]):
                return n
    return None


def _block(lines: list[str], table: str, index: int | None) -> tuple[int, int] | None:
    """0-based ``[start, end)`` lines of table ``[table]`` or of the ``index``-th ``[[table]]``, sub-tables
    (``[[table.steps]]``) included."""
    head = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]" if index is not None else rf"^\s*\[\s*{re.escape(table)}\s*\]")
    starts = [n for n, line in enumerate(lines) if head.match(line)]
    k = index or 0
    if len(starts) <= k:
        return None
    start = starts[k]
    own = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\.")
    end = next(
        (n for n in range(start + 1, len(lines)) if lines[n].lstrip().startswith("[") and not own.match(lines[n])),
        len(lines),
    )
    return start, end


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Line number of the key at ``loc`` in the TOML text: inside the right ``[[tasks]]``/``[[variants]]``/
    ``[[targets]]`` entry or ``[table]`` where the file uses table headers, else the first match."""
    lines = text.splitlines()
    keys = [k for k in loc if isinstance(k, str)]
    if loc and isinstance(loc[0], str):
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        block = _block(lines, loc[0], index)
        if block is not None:
            inner = [k for k in loc[1 if index is None else 2 :] if isinstance(k, str)]
            found = _key_line(lines, block[0] + 1, block[1], inner) if inner else None
            return (found if found is not None else block[0]) + 1
    found = _key_line(lines, 0, len(lines), keys)
    return None if found is None else found + 1


def _where(path: Path, text: str, loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for k in loc:
        if isinstance(k, int):
            label = ""
            if isinstance(node, list) and k < len(node) and isinstance(node[k], dict):
                label = str(node[k].get("name", ""))
            parts[-1] = f"{parts[-1]}[{k}{'=' + label if label else ''}]" if parts else f"[{k}]"
        else:
            parts.append(str(k))
        try:
            node = node[k]
        except (KeyError, IndexError, TypeError):
            node = None
    line = _line_of(text, loc)
    return f"{path}{f':{line}' if line else ''}: {'.'.join(parts) or '(top level)'}"


def _first(e: ValidationError) -> Any:
    """The most telling error: a misspelt key explains the 'missing' error that comes with it."""
    errs = e.errors()
    return next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])


def _explain(err: dict[str, Any]) -> str:
    t = err["type"]
    if t == "extra_forbidden":
        return "unknown key (check the spelling; see the example suites in benches/)"
    if t == "missing":
        return "required key is missing"
    return str(err["msg"])


def suites_dir() -> Path:
    """The packaged suites (the checkout's ``benches/``)."""
    return data_dir("frugalbench_suites", "benches")


def packaged_suites() -> dict[str, Path]:
    """The suites that ship with the package, by name (the file name without ``.toml``)."""
    return {p.stem: p for p in sorted(suites_dir().glob("*.toml"))}


def resolve_suite(name_or_path: str | Path) -> Path:
    """A suite file as given, else the packaged suite of that name; an error lists the packaged ones."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    known = packaged_suites()
    if path.suffix != ".toml" and len(path.parts) == 1 and path.name in known:
        return known[path.name]
    is_path = path.suffix == ".toml" or len(path.parts) > 1
    what = "suite file" if is_path else "suite (neither a file nor a packaged suite)"
    raise ConfigError(
        f"{what} {str(name_or_path)!r} not found; packaged suites: {', '.join(known) or 'none'} "
        "(e.g. frugalbench run quick; frugalbench suites describes them)"
    )


def suite_description(path: Path) -> tuple[str, str]:
    """``(name, description)`` from a suite's ``[suite]`` table, read without validating the rest."""
    try:
        info = tomllib.loads(path.read_text(encoding="utf-8")).get("suite", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        return path.stem, f"(unreadable: {e})"
    return str(info.get("name", path.stem)), str(info.get("description", ""))


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file (or a packaged suite by name); relative file paths are resolved
    against its folder."""
    path = resolve_suite(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file (byte {e.start} is not UTF-8); give a TOML suite") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        suite = Suite(**data)
    except ValidationError as e:
        err = _first(e)
        raise ConfigError(f"{_where(path, text, err['loc'], data)}: {_explain(err)}") from None
    suite.path = path
    base = path.parent
    for task in suite.tasks:
        for attr in ("model", "data"):
            raw = getattr(task, attr)
            if raw is not None:
                p = Path(raw) if Path(raw).is_absolute() else base / raw
                if not p.exists():
                    loc = ("tasks", suite.tasks.index(task), attr)
                    raise ConfigError(f"{_where(path, text, loc, data)}: file {p} not found")
                setattr(task, attr, str(p))
    _check_names(path, text, data, suite)
    _check_tasks(path, text, data, suite)
    _check_plugins(path, text, data, suite)
    return suite


def _check_tasks(path: Path, text: str, data: dict[str, Any], suite: Suite) -> None:
    """Metric parameters and recipe parameters: unknown keys and out-of-range values are refused."""
    from .metrics import check_params

    for i, task in enumerate(suite.tasks):
        try:
            check_params(task.metric, task.metric_params)
        except ConfigError as e:
            raise ConfigError(f"{_where(path, text, ('tasks', i, 'metric_params'), data)}: {e}") from None
        if task.recipe_params and task.recipe is None and task.recipes is None:
            raise ConfigError(
                f"{_where(path, text, ('tasks', i, 'recipe_params'), data)}: recipe_params needs 'recipe' "
                "or 'recipes'"
            )


def _check_names(path: Path, text: str, data: dict[str, Any], suite: Suite) -> None:
    sections: list[tuple[str, list[str]]] = [
        ("tasks", [t.name for t in suite.tasks]),
        ("variants", [v.name for v in suite.variants]),
    ]
    for section, item_names in sections:
        seen: set[str] = set()
        for i, name in enumerate(item_names):
            if name in seen:
                raise ConfigError(
                    f"{_where(path, text, (section, i, 'name'), data)}: duplicate name {name!r}"
                )
            seen.add(name)
    names = {t.name for t in suite.tasks}
    for i, v in enumerate(suite.variants):
        for t in v.tasks or []:
            if t not in names:
                raise ConfigError(
                    f"{_where(path, text, ('variants', i, 'tasks'), data)}: no task {t!r} (tasks: {sorted(names)})"
                )
    recipes = {r for t in suite.tasks for r, _ in t.base_models if r}
    for i, v in enumerate(suite.variants):
        for r in v.recipes or []:
            if r not in recipes:
                raise ConfigError(
                    f"{_where(path, text, ('variants', i, 'recipes'), data)}: no task uses recipe {r!r} "
                    f"(recipes of the tasks: {sorted(recipes)})"
                )


def _check_plugins(path: Path, text: str, data: dict[str, Any], suite: Suite) -> None:
    """Validate target/meter tables and compression steps against the registered classes."""
    from .registry import load_all

    load_all()
    from .compress.base import make_compressor
    from .meters.base import METERS
    from .pipeline.recipes import check_recipe_params, load_recipes

    for i, task in enumerate(suite.tasks):
        for recipe, params in task.base_models:
            if recipe is None:
                continue
            try:
                load_recipes().get(recipe)
            except ConfigError as e:
                key = "recipes" if task.recipes is not None else "recipe"
                raise ConfigError(f"{_where(path, text, ('tasks', i, key), data)}: {e}") from None
            try:
                check_recipe_params(recipe, params)
            except ConfigError as e:
                raise ConfigError(f"{_where(path, text, ('tasks', i, 'recipe_params'), data)}: {e}") from None
    for i, v in enumerate(suite.variants):
        for j, (tech, params) in enumerate(v.chain):
            where = f"{_where(path, text, ('variants', i, 'steps' if v.steps else 'technique'), data)}: "
            if any(t == "int8" for t, _ in v.chain[:j]):
                raise ConfigError(f"{where}int8 must be the last step (nothing may follow quantisation)")
            try:
                make_compressor(tech, params, where=where)
            except ConfigError as e:
                raise ConfigError(str(e) if str(e).startswith(where) else f"{where}{e}") from None
    seen: set[str] = set()
    for i, t in enumerate(suite.targets):
        validate_target(
            t,
            where=_where(path, text, ("targets", i), data),
            at=lambda loc, i=i: _where(path, text, ("targets", i, *loc), data),  # type: ignore[misc]
        )
        if t["name"] in seen:
            raise ConfigError(f"{_where(path, text, ('targets', i, 'name'), data)}: duplicate target name")
        seen.add(t["name"])
    if suite.meter.get("kind", "auto") != "auto":
        validate_meter(
            suite.meter,
            where=_where(path, text, ("meter",), data),
            registry=METERS,
            at=lambda loc: _where(path, text, ("meter", *loc), data),
        )


SERIAL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "hwgrep", "alt", "cp2110")  # pyserial's URL handlers


def _check_values(table: dict[str, Any], where: Callable[[tuple[Any, ...]], str]) -> None:
    """Numbers and ports a plug-in's ``Config`` lets through: finite floats, CPU cores >= 0, a serial
    port that is a device path or a URL pyserial opens, a printable name."""
    for key, v in table.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where((key,))}: {v} is not a finite number")
        if key == "name" and isinstance(v, str):
            try:
                check_name(v)
            except ValueError as e:
                raise ConfigError(f"{where((key,))}: {e}") from None
        if key == "cores" and isinstance(v, list):
            bad = [c for c in v if isinstance(c, int) and not 0 <= c < 4096]
            if bad or not v:
                raise ConfigError(
                    f"{where((key,))}: CPU core numbers start at 0 (got {v}); e.g. cores = [0, 1]"
                )
        if key == "port" and isinstance(v, str) and "://" in v:
            scheme = v.split("://", 1)[0].lower()
            if scheme not in SERIAL_SCHEMES:
                raise ConfigError(
                    f"{where((key,))}: unknown serial URL scheme {scheme!r}; give a device such as "
                    f"/dev/ttyACM0 or a URL of {', '.join(s + '://' for s in SERIAL_SCHEMES)}"
                )


def validate_target(
    table: dict[str, Any], *, where: str, at: Callable[[tuple[Any, ...]], str] | None = None
) -> Any:
    """The target's ``Config``; ``at(loc)`` (optional) names the file line of a key inside the table."""
    from .targets.base import TARGETS

    kind = table.get("kind")
    if not isinstance(kind, str) or "name" not in table:
        raise ConfigError(f"{where}: each target needs 'name' and 'kind' (one of {TARGETS.names()})")
    at = at or (lambda loc: f"{where}.{'.'.join(str(k) for k in loc)}")
    cfg = _validate_table(TARGETS, kind, table, where, at)
    _check_values(table, at)
    return cfg


def validate_meter(
    table: dict[str, Any], *, where: str, registry: Any, at: Callable[[tuple[Any, ...]], str] | None = None
) -> Any:
    at = at or (lambda loc: f"{where}.{'.'.join(str(k) for k in loc)}")
    cfg = _validate_table(registry, table.get("kind", ""), table, where, at)
    _check_values(table, at)
    return cfg


def _validate_table(
    registry: Any, kind: str, table: dict[str, Any], where: str, at: Callable[[tuple[Any, ...]], str]
) -> Any:
    """The plug-in's pydantic ``Config`` for ``table``, with errors that name the key (and its line)."""
    try:
        cls = registry.get(kind)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    try:
        return cls.Config(**table)
    except ValidationError as e:
        err = _first(e)
        raise ConfigError(f"{at(tuple(err['loc']))}: {_explain(err)}") from None
