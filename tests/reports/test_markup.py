"""The HTML building blocks: escaping is structural, numbers read well, figures embed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from edgekit.errors import DataError
from edgekit.reports.devices import as_row, proof_rows, proof_summary
from edgekit.reports.gates import verdict
from edgekit.reports.markup import (
    Markup,
    el,
    esc,
    figure_grid,
    image_data_uri,
    number,
    page,
    percent,
    png_size,
    seconds,
)


def test_text_is_escaped_and_markup_is_not() -> None:
    assert el("td", "<b>x</b> & 'y'") == "<td>&lt;b&gt;x&lt;/b&gt; &amp; &#x27;y&#x27;</td>"
    assert el("td", Markup("<b>x</b>")) == "<td><b>x</b></td>"
    assert el("a", "x", href='"><script>') == '<a href="&quot;&gt;&lt;script&gt;">x</a>'
    assert el("td", None, 3, ["a", "<"]) == "<td>3a&lt;</td>"
    assert el("img", src="data:x", alt="a") == '<img src="data:x" alt="a">'
    assert el("tr", class_="failed device", hidden=False, open=True) == (
        '<tr class="failed device" open></tr>'
    )
    assert esc(None) == ""


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        (12, "12"),
        (21.3749, "21.4"),
        (0.0, "0"),
        (0.04999, "0.05"),
        (1234.5, "1234"),
        (float("nan"), "–"),
        (True, "yes"),
        ("PROVEN", "PROVEN"),
    ],
)
def test_numbers_read_well(value: Any, shown: str) -> None:
    assert number(value) == shown


def test_percent_and_seconds() -> None:
    assert percent(0.853) == "85.3 %"
    assert percent(None) == "–"
    assert seconds(7.74) == "7.7 s"
    assert seconds(312.0) == "5 min 12 s"
    assert seconds(None) == "–"


def test_figures_embed_as_data_uris_and_wide_ones_take_the_row(
    tmp_path: Path, samples: Any
) -> None:
    small = samples.png(tmp_path / "small.png", 600, 400, (1, 2, 3))
    wide = samples.png(tmp_path / "wide.png", 1400, 400, (1, 2, 3))
    assert png_size(small.read_bytes()) == (600, 400)
    assert png_size(b"GIF89a...") is None
    uri = image_data_uri(small)
    assert base64.b64decode(uri.removeprefix("data:image/png;base64,")) == small.read_bytes()
    grid = figure_grid({"small": small, "<wide>": wide})
    assert grid.count("<figure>") == 1 and grid.count('<figure class="wide">') == 1
    assert 'width="1400" height="400"' in grid and "&lt;wide&gt;" in grid
    with pytest.raises(DataError, match=r"missing.png: cannot read it"):
        image_data_uri(tmp_path / "missing.png")
    with pytest.raises(DataError, match=r"plot.pdf: only"):
        image_data_uri(tmp_path / "plot.pdf")


def test_the_page_has_no_scripts_and_no_external_assets() -> None:
    html = page("t <1>", el("p", "body"), subtitle="s", footer="f")
    assert html.startswith('<!doctype html>\n<html lang="en">')
    assert "<title>t &lt;1&gt;</title>" in html and "<script" not in html
    assert "http" not in html.replace("https://", "")  # no external URL at all


def test_proofs_come_in_every_shape() -> None:
    from dataclasses import dataclass

    @dataclass
    class Proof:  # like edgekit.deploy.proof.DeviceProof
        thing: str
        state: str
        results: int = 0

    rows = proof_rows(
        {
            "b": Proof("b", "PROVEN", 4),
            "a": {"state": "FAILED", "reason": "silent"},
        }
    )
    assert [(r["thing"], r["state"], r["results"]) for r in rows] == [
        ("a", "FAILED", None),
        ("b", "PROVEN", 4),
    ]
    record_row = as_row({"thing": "c", "status": "SUCCEEDED", "proof": {"state": "PENDING"}})
    assert record_row["greengrass_status"] == "SUCCEEDED" and record_row["state"] == "PENDING"
    assert proof_summary(rows) == "1 of 2 device(s) proved inspection; not proven: a"
    assert proof_rows(None) == []


def test_a_device_proof_of_edgekit_deploy_is_a_row() -> None:
    from edgekit.deploy.proof import DeviceProof

    proof = DeviceProof("edgekit-core-1", "SUCCEEDED", "ab" * 32, None, 5, 1, 20.5, "RUNNING")
    [row] = proof_rows({"edgekit-core-1": proof})
    assert row == {**proof.as_dict()}
    assert as_row(proof.as_dict()) == row


@pytest.mark.parametrize(
    ("gate", "failing", "word"),
    [
        ({"name": "p95_latency", "verdict": "FAIL"}, None, "FAIL"),
        ({"name": "proof", "passed": True}, None, "PASS"),
        ({"name": "proof", "ok": False}, None, "FAIL"),
        ({"name": "error_rate", "status": "passed"}, None, "PASS"),
        ({"name": "shadow_agreement", "verdict": "SKIPPED"}, None, "SKIPPED"),
        ({"name": "error_rate"}, "error_rate", "FAIL"),
        ({"name": "error_rate"}, None, "–"),
    ],
)
def test_gate_verdicts(gate: dict[str, Any], failing: str | None, word: str) -> None:
    assert verdict(gate, failing) == word
