"""The flywheel's SVG plot."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from envsim.train.plot import flywheel_svg


def test_the_plot_is_well_formed_svg_with_every_stage() -> None:
    svg = flywheel_svg(
        {"untrained": (0.0, 0.05), "sft": (0.9, 0.92), "grpo": (0.88, 0.9)},
        {"untrained": (0.0, 0.4), "sft": (0.0, 0.1), "grpo": (0.0, 0.1)},
        [0.5, 0.9, 1.0, 0.75],
    )
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert {"untrained", "sft", "grpo", "0.92", "held-out scenarios"} <= set(texts)
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 1


def test_without_grpo_or_held_out_scenarios() -> None:
    svg = flywheel_svg({"untrained": (0.0, 0.0), "sft": (1.0, 1.0)})
    ET.fromstring(svg)
    assert "polyline" not in svg and "held-out" not in svg
