"""Dataset specs: a TOML file per dataset that holds every generator parameter.

A dataset *is* its spec: the generators read nothing else, and the HDF5 file stores the
effective spec (after command-line overrides) as TOML text, so a file can be regenerated
from its own attributes. Validation is strict (missing, unknown and wrong-typed fields are
errors naming the field) because a silently ignored typo would make a different dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Union

import numpy as np

from tagdata.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SPECS_DIR_NAME = "data_specs"
MAX_SIDE = 4096  # pixels, for image_size and the texture canvas (the paper's: 20x20 and 28x28)
MNIST_FILES = ("train", "test")
# How a digit's MNIST intensity becomes its alpha: "intensity" / 255 (the paper's soft edges), or
# "binary" (1 from intensity 128 up, else 0): a diagnostic variant with no blended pixels.
DIGIT_ALPHAS = ("intensity", "binary")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ShapeTemplate:
    """One shape of the Shapes set: a binary template; its position in the set is its label."""

    name: str
    rows: tuple[str, ...]

    @property
    def array(self) -> np.ndarray:
        """The template as a bool array (rows, columns)."""
        return np.array([[c == "1" for c in row] for row in self.rows], dtype=bool)


@dataclass(frozen=True)
class ShapesSpec:
    """Binary Shapes (the paper, Section 3, "Shapes")."""

    kind: ClassVar[str] = "shapes"
    split_names: ClassVar[tuple[str, ...]] = ("train", "valid", "test", "single")

    name: str
    seed: int
    image_size: tuple[int, int]
    objects: int
    splits: dict[str, int]
    shapes: tuple[ShapeTemplate, ...]

    def objects_in(self, split: str) -> int:
        """Shapes per image: the "single" split always has one."""
        return 1 if split == "single" else self.objects


@dataclass(frozen=True)
class SourceRange:
    """The MNIST images a split draws from: file ("train" or "test") and [start, stop)."""

    file: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class TextureMnistSpec:
    """TextureMNIST1/2 (the paper, Section 3, "Textured MNIST")."""

    kind: ClassVar[str] = "texture-mnist"
    split_names: ClassVar[tuple[str, ...]] = ("train", "valid", "test")

    name: str
    seed: int
    image_size: tuple[int, int]
    splits: dict[str, int]
    sources: dict[str, SourceRange]
    digits: int
    selection: str
    shifts: tuple[tuple[int, int], ...]
    z_order: str
    canvas: int
    crop: int
    frequencies: tuple[tuple[int, int], ...]
    alpha: str = DIGIT_ALPHAS[0]


Spec = Union[ShapesSpec, TextureMnistSpec]


# ----------------------------------------------------------------------------- locating


def specs_dir() -> Path:
    """The directory of the built-in specs: data_specs/ beside the package in a checkout or
    editable install, else the copy a regular install puts in <data>/share/tagdata (see
    pyproject.toml's data-files)."""
    candidates = [Path(__file__).resolve().parent.parent / SPECS_DIR_NAME]
    for scheme in (None, f"{os.name}_user"):
        try:
            data = sysconfig.get_path("data", scheme) if scheme else sysconfig.get_path("data")
        except KeyError:
            continue
        candidates.append(Path(data) / "share" / "tagdata" / SPECS_DIR_NAME)
    return next((c for c in candidates if c.is_dir()), candidates[0])


def builtin_names() -> list[str]:
    """Names accepted by ``make-dataset NAME``."""
    return sorted(p.stem for p in specs_dir().glob("*.toml"))


def resolve_spec(name_or_path: str) -> Spec:
    """Load a built-in spec by name, or a spec file by path (anything ending in .toml or
    naming an existing file)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        return load_spec(path)
    candidate = specs_dir() / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = ", ".join(builtin_names()) or "none found"
        raise UserError(
            f"unknown dataset '{name_or_path}' (known: {known}; or give a path to a .toml spec)"
        )
    return load_spec(candidate)


def load_spec(path: Path) -> Spec:
    """Read and validate one spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"spec file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read spec file {path}: {err}") from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "spec") -> Spec:
    """Parse and validate TOML text into a spec."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{source}: not valid TOML: {err}") from None
    return spec_from_dict(data, source)


# ----------------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)


class _Table:
    """One TOML table being validated: remembers which keys were read so that the rest can
    be reported as unknown, and names every field by its dotted path."""

    def __init__(self, data: dict, prefix: str, source: str):
        self.data, self.prefix, self.source, self.used = data, prefix, source, set()

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, message: str) -> UserError:
        return UserError(f"{self.source}: {message}")

    def get(self, key: str, check: Callable[[Any], bool], what: str) -> Any:
        if key not in self.data:
            raise self.error(f"missing field '{self.path(key)}'")
        self.used.add(key)
        value = self.data[key]
        if not check(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise self.error(
                f"field '{self.path(key)}' must be {what}, got {_type_name(value)} ({shown})"
            )
        return value

    def int(self, key: str, low: int = 0, high: int = 2**63 - 1) -> int:
        value = self.get(key, _is_int, "an integer")
        if not low <= value <= high:
            bound = f">= {low}" if high == 2**63 - 1 else f"in {low}..{high}"
            raise self.error(f"field '{self.path(key)}' must be {bound}, got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        """The field's value among ``choices``; an optional field (``default`` given) may be absent."""
        if default is not None and key not in self.data:
            return default
        value = self.get(key, lambda v: isinstance(v, str), "a string")
        if value not in choices:
            raise self.error(
                f"field '{self.path(key)}' must be one of {', '.join(choices)}, got '{value}'"
            )
        return value

    def name(self, key: str) -> str:
        value = self.get(key, lambda v: isinstance(v, str), "a string")
        if not _NAME_RE.match(value):
            raise self.error(
                f"field '{self.path(key)}' must be letters, digits, '-', '_' or '.', got '{value}'"
            )
        return value

    def pair(self, key: str, low: int = 1, high: int = MAX_SIDE) -> tuple[int, int]:
        value = tuple(self.get(key, _is_int_pair, "an array of two integers"))
        if min(value) < low or max(value) > high:
            raise self.error(f"field '{self.path(key)}' entries must be in {low}..{high}, got {list(value)}")
        return value

    def pairs(self, key: str) -> tuple[tuple[int, int], ...]:
        value = self.get(
            key, lambda v: isinstance(v, list) and all(_is_int_pair(p) for p in v),
            "an array of [integer, integer] pairs",
        )
        return tuple(tuple(p) for p in value)

    def table(self, key: str) -> "_Table":
        value = self.get(key, lambda v: isinstance(v, dict), "a table")
        return _Table(value, f"{self.path(key)}.", self.source)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            fields = ", ".join(f"'{self.path(k)}'" for k in unknown)
            raise self.error(f"unknown field{'s' if len(unknown) > 1 else ''} {fields}")


def _splits(root: _Table, names: tuple[str, ...]) -> dict[str, int]:
    table = root.table("splits")
    sizes = {name: table.int(name) for name in names}
    table.done()
    return sizes


def _shape_templates(root: _Table, image_size: tuple[int, int]) -> tuple[ShapeTemplate, ...]:
    entries = root.get(
        "shapes", lambda v: isinstance(v, list) and v and all(isinstance(e, dict) for e in v),
        "a non-empty array of tables ([[shapes]])",
    )
    templates = []
    for i, entry in enumerate(entries):
        table = _Table(entry, f"shapes[{i}].", root.source)
        name = table.name("name")
        rows = table.get(
            "template",
            lambda v: isinstance(v, list) and v and all(isinstance(r, str) for r in v),
            "a non-empty array of strings",
        )
        table.done()
        where = f"field '{table.path('template')}'"
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            raise table.error(f"{where} rows must all have the same, non-zero length")
        if any(set(r) - {"0", "1"} for r in rows):
            raise table.error(f"{where} may only hold '0' and '1'")
        if "1" not in "".join(rows):
            raise table.error(f"{where} has no pixel on")
        if len(rows) > image_size[0] or len(rows[0]) > image_size[1]:
            raise table.error(f"{where} ({len(rows)}x{len(rows[0])}) does not fit the image")
        templates.append(ShapeTemplate(name, tuple(rows)))
    if len({t.name for t in templates}) != len(templates):
        raise root.error("shape names must be distinct")
    return tuple(templates)


def _shapes_spec(root: _Table, name: str, seed: int, image_size: tuple[int, int]) -> ShapesSpec:
    objects = root.int("objects", low=1, high=254)
    splits = _splits(root, ShapesSpec.split_names)
    shapes = _shape_templates(root, image_size)
    return ShapesSpec(name, seed, image_size, objects, splits, shapes)


def _texture_spec(root: _Table, name: str, seed: int, image_size: tuple[int, int]) -> TextureMnistSpec:
    splits = _splits(root, TextureMnistSpec.split_names)

    sources_table = root.table("sources")
    sources = {}
    for split in TextureMnistSpec.split_names:
        table = sources_table.table(split)
        source = SourceRange(table.choice("file", MNIST_FILES), table.int("start"), table.int("stop"))
        table.done()
        if source.stop < source.start:
            raise root.error(f"'sources.{split}' has stop {source.stop} < start {source.start}")
        if splits[split] > len(source):
            raise root.error(
                f"split '{split}' asks for {splits[split]} examples but its MNIST source "
                f"({source.file} images {source.start}..{source.stop - 1}) holds {len(source)}"
            )
        sources[split] = source
    sources_table.done()

    digits = root.table("digits")
    count = digits.int("count", low=1, high=253)
    selection = digits.choice("selection", ("sequential", "permutation"))
    shifts = digits.pairs("shifts")
    z_order = digits.choice("z_order", ("fixed", "random"))
    alpha = digits.choice("alpha", DIGIT_ALPHAS, default=DIGIT_ALPHAS[0])
    digits.done()
    if len(shifts) != count:
        raise root.error(f"'digits.shifts' needs one [dy, dx] per digit ({count}), got {len(shifts)}")
    if any(abs(s) >= min(image_size) for pair in shifts for s in pair):
        raise root.error("'digits.shifts' moves a digit out of the image")
    if selection == "sequential" and count != 1:
        raise root.error("'digits.selection' = \"sequential\" needs exactly one digit")

    textures = root.table("textures")
    canvas = textures.int("canvas", low=1, high=MAX_SIDE)
    crop = textures.int("crop", low=1)
    frequencies = textures.pairs("frequencies")
    textures.done()
    if image_size != (crop, crop):
        raise root.error(f"'textures.crop' ({crop}) must equal the image size {list(image_size)}")
    if crop > canvas:
        raise root.error(f"'textures.crop' ({crop}) is larger than 'textures.canvas' ({canvas})")
    if any(not 0 <= f < canvas for pair in frequencies for f in pair):
        raise root.error(f"'textures.frequencies' entries must be in 0..{canvas - 1}")
    if len(frequencies) < count + 1:
        raise root.error(
            f"'textures.frequencies' needs at least {count + 1} textures (one per layer)"
        )
    return TextureMnistSpec(
        name, seed, image_size, splits, sources, count, selection, shifts, z_order,
        canvas, crop, frequencies, alpha,
    )


def spec_from_dict(data: dict, source: str = "spec") -> Spec:
    """Validate a parsed TOML document into a spec dataclass."""
    root = _Table(data, "", source)
    name = root.name("name")
    kind = root.choice("kind", (ShapesSpec.kind, TextureMnistSpec.kind))
    seed = root.int("seed")
    image_size = root.pair("image_size", low=1)
    build = _shapes_spec if kind == ShapesSpec.kind else _texture_spec
    spec = build(root, name, seed, image_size)
    root.done()
    return spec


# ----------------------------------------------------------------------------- overrides


def with_overrides(spec: Spec, *, seed: int | None = None, **sizes: int | None) -> Spec:
    """The spec with a new seed and/or split sizes (None = keep), validated again."""
    data = spec_to_dict(spec)
    if seed is not None:
        data["seed"] = seed
    for split, size in sizes.items():
        if size is None:
            continue
        if split not in spec.split_names:
            raise UserError(f"--{split} does not apply to {spec.kind} datasets")
        if size < 0:
            raise UserError(f"--{split} must be >= 0, got {size}")
        data["splits"][split] = size
    return spec_from_dict(data, source=f"{spec.name} (with overrides)")


# ----------------------------------------------------------------------------- TOML out


def spec_to_dict(spec: Spec) -> dict:
    """The TOML document of a spec (the inverse of :func:`spec_from_dict`)."""
    data: dict[str, Any] = {
        "name": spec.name, "kind": spec.kind, "seed": spec.seed,
        "image_size": list(spec.image_size),
    }
    if isinstance(spec, ShapesSpec):
        data["objects"] = spec.objects
        data["splits"] = dict(spec.splits)
        data["shapes"] = [{"name": t.name, "template": list(t.rows)} for t in spec.shapes]
    else:
        data["splits"] = dict(spec.splits)
        data["sources"] = {k: dataclasses.asdict(v) for k, v in spec.sources.items()}
        data["digits"] = {
            "count": spec.digits, "selection": spec.selection,
            "shifts": [list(s) for s in spec.shifts], "z_order": spec.z_order,
        }
        if spec.alpha != DIGIT_ALPHAS[0]:  # written only when set, so the paper's specs stay as they were
            data["digits"]["alpha"] = spec.alpha
        data["textures"] = {
            "canvas": spec.canvas, "crop": spec.crop,
            "frequencies": [list(f) for f in spec.frequencies],
        }
    return data


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_lines(table: dict, prefix: str) -> list[str]:
    lines = [f"{k} = {_toml_value(v)}" for k, v in table.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{prefix}{key}]"] + _toml_lines(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for entry in value:
                lines += ["", f"[[{prefix}{key}]]"] + _toml_lines(entry, f"{prefix}{key}.")
    return lines


def spec_to_toml(spec: Spec) -> str:
    """Canonical TOML text of a spec; parsing it back gives an equal spec."""
    return "\n".join(_toml_lines(spec_to_dict(spec), "")) + "\n"
