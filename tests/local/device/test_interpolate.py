"""edgekit.local.device.interpolate: recipe variables."""

from __future__ import annotations

from pathlib import Path

from edgekit.local.device.interpolate import ComponentPaths, Context, interpolate


def _ctx(tmp_path: Path) -> Context:
    def paths(n: str) -> ComponentPaths:
        return ComponentPaths(tmp_path / "a" / n, tmp_path / "u" / n, tmp_path / "w" / n)

    return Context(
        component="com.ex.App",
        paths={"com.ex.App": paths("com.ex.App"), "com.ex.Lib": paths("com.ex.Lib")},
        configurations={
            "com.ex.App": {"msg": "hi", "n": 3, "flag": True, "obj": {"a": [1, 2]}, "none": None},
            "com.ex.Lib": {"server": {"port": 8080}},
        },
        root_path=tmp_path,
        thing_name="thing-1",
    )


def test_recipe_variables(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    text = (
        "{artifacts:path} {artifacts:decompressedPath} {work:path} {kernel:rootPath} "
        "{iot:thingName} {configuration:/msg} {configuration:/n} {configuration:/flag} "
        "{configuration:/obj} {configuration:/none} {com.ex.Lib:configuration:/server/port} "
        "{com.ex.Lib:artifacts:decompressedPath} {com.ex.Lib:work:path}"
    )
    assert interpolate(text, ctx).split() == [
        f"{tmp_path}/a/com.ex.App",
        f"{tmp_path}/u/com.ex.App",
        f"{tmp_path}/w/com.ex.App",
        str(tmp_path),
        "thing-1",
        "hi",
        "3",
        "true",
        '{"a":[1,2]}',
        "null",
        "8080",
        f"{tmp_path}/u/com.ex.Lib",
        f"{tmp_path}/w/com.ex.Lib",
    ]


def test_unresolvable_variables_stay_as_written(tmp_path: Path) -> None:
    notes: list[str] = []
    text = "{com.ex.Other:artifacts:path} {configuration:/missing} ${HOME:-x}"
    assert interpolate(text, _ctx(tmp_path), notes.append) == text
    assert any("not a direct dependency" in n for n in notes)
