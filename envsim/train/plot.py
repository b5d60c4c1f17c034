"""The flywheel's plot as a self-contained SVG (no plotting library needed).

Left panel: success rate and mean reward per stage (untrained, SFT, GRPO), on the held-out seeds
of the training scenarios (solid) and on the held-out scenarios (hatched). Right panel: the GRPO
run's mean reward per step (the trainer's ``reward`` metric), when there is one.

Example:
    >>> svg = flywheel_svg({"untrained": (0.0, 0.1), "sft": (0.5, 0.6)}, {"untrained": (0.0, 0.0)}, [0.2, 0.4])
    >>> svg.startswith("<svg") and "sft" in svg and svg.count("<polyline") == 1
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

_WIDTH, _HEIGHT = 760, 320
_BLUE, _ORANGE, _GREY = "#3b6fb6", "#e08a2c", "#444"


def _text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "middle", color: str = _GREY) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
        f'font-family="sans-serif">{escape(text)}</text>'
    )


def _axis(x0: float, y0: float, width: float, height: float, top: float) -> list[str]:
    parts = [f'<line x1="{x0}" y1="{y0}" x2="{x0 + width}" y2="{y0}" stroke="{_GREY}"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y0 - height * tick / top
        parts.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(_text(x0 - 8, y + 4, f"{tick * top:g}", size=10, anchor="end"))
    return parts


def flywheel_svg(
    seen: Mapping[str, tuple[float, float]],
    unseen: Mapping[str, tuple[float, float]] | None = None,
    curve: Sequence[float] | None = None,
    *,
    title: str = "envsim flywheel",
) -> str:
    """The SVG text.

    Args:
        seen: Stage → (success rate, mean reward) on held-out seeds of the training scenarios.
        unseen: Stage → (success rate, mean reward) on held-out scenarios (hatched bars).
        curve: GRPO mean reward per step.
        title: Heading.
    """
    unseen = unseen or {}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{_GREY}" stroke-width="2"/></pattern></defs>',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        _text(_WIDTH / 2, 22, title, size=15),
    ]
    x0, y0, width, height = 60.0, 270.0, 400.0, 200.0
    parts += _axis(x0, y0, width, height, 1.0)
    stages = list(seen)
    slot = width / max(1, len(stages))
    bar = slot / 6
    for i, stage in enumerate(stages):
        left = x0 + i * slot + slot / 2 - 2 * bar
        values = [(seen[stage][0], _BLUE, ""), (seen[stage][1], _ORANGE, "")]
        if stage in unseen:
            values += [(unseen[stage][0], _BLUE, "hatch"), (unseen[stage][1], _ORANGE, "hatch")]
        for j, (value, color, pattern) in enumerate(values):
            h = height * max(0.0, min(1.0, value))
            x = left + j * bar
            parts.append(f'<rect x="{x:.1f}" y="{y0 - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{color}"/>')
            if pattern:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y0 - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="url(#{pattern})" '
                    'opacity="0.5"/>'
                )
            parts.append(_text(x + bar / 2 - 1, y0 - h - 4, f"{value:.2f}", size=9))
        parts.append(_text(x0 + i * slot + slot / 2, y0 + 18, stage, size=12))
    legend = [(_BLUE, "success rate"), (_ORANGE, "mean reward")]
    for k, (color, label) in enumerate(legend):
        parts.append(f'<rect x="{x0 + 10 + k * 130}" y="42" width="12" height="12" fill="{color}"/>')
        parts.append(_text(x0 + 28 + k * 130, 53, label, size=11, anchor="start"))
    if unseen:
        parts.append(f'<rect x="{x0 + 270}" y="42" width="12" height="12" fill="url(#hatch)" stroke="{_GREY}"/>')
        parts.append(_text(x0 + 288, 53, "held-out scenarios", size=11, anchor="start"))
    if curve:
        cx0, cwidth = 520.0, 210.0
        top = max(1.0, max(curve))
        parts += _axis(cx0, y0, cwidth, height, top)
        step = cwidth / max(1, len(curve) - 1)
        points = " ".join(f"{cx0 + i * step:.1f},{y0 - height * v / top:.1f}" for i, v in enumerate(curve))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{_ORANGE}" stroke-width="2"/>')
        parts.append(_text(cx0 + cwidth / 2, y0 + 18, f"GRPO step (1-{len(curve)})", size=11))
        parts.append(_text(cx0 + cwidth / 2, 53, "GRPO: mean episode reward per step", size=11))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
