"""Spec files: the built-ins, TOML round trip, overrides and every kind of bad field."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tagdata import UserError
from tagdata.specs import (
    ShapesSpec,
    TextureMnistSpec,
    builtin_names,
    load_spec,
    parse_spec,
    resolve_spec,
    spec_from_dict,
    spec_to_dict,
    spec_to_toml,
    with_overrides,
)

FREQUENCIES = [(a, b + row) for row, a in enumerate([4, 10, 21, 32, 37]) for b in [0, 4, 8, 12]]


def test_builtin_specs_exist_and_round_trip():
    assert builtin_names() == [
        "shapes", "shapes-2obj", "shapes-4obj", "texture-mnist1", "texture-mnist1-binary", "texture-mnist2"]
    for name in builtin_names():
        spec = resolve_spec(name)
        assert spec.name == name
        assert parse_spec(spec_to_toml(spec)) == spec


def test_builtin_values_follow_the_reference():
    shapes = resolve_spec("shapes")
    assert isinstance(shapes, ShapesSpec)
    assert (shapes.image_size, shapes.objects) == ((20, 20), 3)
    assert shapes.splits == {"train": 50000, "valid": 10000, "test": 10000, "single": 10000}
    assert [s.name for s in shapes.shapes] == ["square", "up-triangle", "down-triangle"]
    assert resolve_spec("shapes-2obj").objects == 2 and resolve_spec("shapes-4obj").objects == 4

    for name, digits in (("texture-mnist1", 1), ("texture-mnist2", 2)):
        spec = resolve_spec(name)
        assert isinstance(spec, TextureMnistSpec)
        assert spec.digits == digits and spec.image_size == (28, 28)
        assert (spec.canvas, spec.crop) == (38, 28)
        assert list(spec.frequencies) == FREQUENCIES
        assert spec.splits == {"train": 50000, "valid": 10000, "test": 10000}
        assert {k: (v.file, v.start, v.stop) for k, v in spec.sources.items()} == {
            "train": ("train", 0, 50000), "valid": ("train", 50000, 60000), "test": ("test", 0, 10000)}
    tm1, tm2 = resolve_spec("texture-mnist1"), resolve_spec("texture-mnist2")
    assert (tm1.selection, tm1.z_order, tm1.shifts) == ("sequential", "fixed", ((0, 0),))
    assert (tm2.selection, tm2.z_order, tm2.shifts) == ("permutation", "random", ((-2, -2), (2, 2)))
    assert tm1.alpha == tm2.alpha == "intensity"


def test_the_binary_alpha_variant_differs_from_texture_mnist1_in_its_alpha_only():
    soft, hard = resolve_spec("texture-mnist1"), resolve_spec("texture-mnist1-binary")
    assert hard.alpha == "binary"
    assert dataclasses.replace(hard, name=soft.name, alpha=soft.alpha) == soft
    # the optional field is written only when set, so the paper's specs keep their text
    assert "alpha" not in spec_to_toml(soft) and 'alpha = "binary"' in spec_to_toml(hard)


def test_resolve_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(spec_to_toml(resolve_spec("shapes-2obj")))
    assert resolve_spec(str(path)) == resolve_spec("shapes-2obj")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown dataset 'nope' \(known: shapes, shapes-2obj"):
        resolve_spec("nope")


def test_overrides():
    spec = with_overrides(resolve_spec("shapes"), seed=7, train=5, single=0)
    assert spec.seed == 7 and spec.splits == {"train": 5, "valid": 10000, "test": 10000, "single": 0}
    with pytest.raises(UserError, match="--single does not apply to texture-mnist"):
        with_overrides(resolve_spec("texture-mnist1"), single=3)
    with pytest.raises(UserError, match="--train must be >= 0, got -1"):
        with_overrides(resolve_spec("shapes"), train=-1)
    with pytest.raises(UserError, match=r"split 'train' asks for 50001 examples but its MNIST source "
                                        r"\(train images 0..49999\) holds 50000"):
        with_overrides(resolve_spec("texture-mnist2"), train=50001)


@pytest.mark.parametrize("base, edit, message", [
    ("shapes", lambda d: d.pop("seed"), "missing field 'seed'"),
    ("shapes", lambda d: d["splits"].pop("single"), "missing field 'splits.single'"),
    ("shapes", lambda d: d.update(colour="red"), "unknown field 'colour'"),
    ("shapes", lambda d: d["splits"].update(extra=3), "unknown field 'splits.extra'"),
    ("shapes", lambda d: d["splits"].update(train="many"), "field 'splits.train' must be an integer, got a string"),
    ("shapes", lambda d: d["splits"].update(train=True), "field 'splits.train' must be an integer, got a boolean"),
    ("shapes", lambda d: d["splits"].update(test=-3), "field 'splits.test' must be >= 0, got -3"),
    ("shapes", lambda d: d.update(seed=1.5), "field 'seed' must be an integer, got a float"),
    ("shapes", lambda d: d.update(kind="circles"), "field 'kind' must be one of shapes, texture-mnist"),
    ("shapes", lambda d: d.update(image_size=[20]), "field 'image_size' must be an array of two integers"),
    ("shapes", lambda d: d["shapes"][0].update(template=["101", "11"]), "rows must all have the same"),
    ("shapes", lambda d: d["shapes"][1].update(template=["102"]), "may only hold '0' and '1'"),
    ("shapes", lambda d: d["shapes"][1].update(template=["1" * 21]), "does not fit the image"),
    ("shapes", lambda d: d["shapes"][2].pop("name"), "missing field 'shapes\\[2\\].name'"),
    ("texture-mnist2", lambda d: d["digits"].update(shifts=[[1, 1]]), "one \\[dy, dx\\] per digit"),
    ("texture-mnist2", lambda d: d["digits"].update(z_order="coin"), "must be one of fixed, random"),
    ("texture-mnist1", lambda d: d["digits"].update(alpha="soft"), "'digits.alpha' must be one of intensity, binary"),
    ("texture-mnist1", lambda d: d["digits"].update(alpha=1), "'digits.alpha' must be a string"),
    ("texture-mnist2", lambda d: d["digits"].update(selection="sequential"), "needs exactly one digit"),
    ("texture-mnist2", lambda d: d["textures"].update(crop=20), "must equal the image size"),
    ("texture-mnist2", lambda d: d["textures"].update(frequencies=[[38, 1]] * 20), "entries must be in 0..37"),
    ("texture-mnist2", lambda d: d["textures"].update(frequencies=[[4, 1]] * 2), "at least 3 textures"),
    ("texture-mnist2", lambda d: d["sources"]["valid"].update(file="other"), "'sources.valid.file' must be one of"),
    ("texture-mnist2", lambda d: d["sources"]["test"].update(stop=10), "asks for 10000 examples"),
    ("texture-mnist1", lambda d: d["splits"].update(single=4), "unknown field 'splits.single'"),
])
def test_bad_fields_are_named(base, edit, message):
    data = spec_to_dict(resolve_spec(base))
    edit(data)
    with pytest.raises(UserError, match=message):
        spec_from_dict(data, source="s.toml")


def test_unreadable_or_invalid_spec_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x\n")
    with pytest.raises(UserError, match=re.escape(f"{bad}: not valid TOML")):
        load_spec(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="cannot read spec file"):
        load_spec(binary)
    with pytest.raises(UserError, match="cannot read spec file"):
        load_spec(tmp_path)  # a directory
