"""A tiny web font made on the spot (fontTools), so the fidelity pages need no font file from elsewhere.

Its glyphs are blocks of bars and its advance widths differ from any system font's, so a replay that
falls back to another font shows at once: other shapes, and lines that wrap elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

UNITS_PER_EM = 1000
ASCENT, DESCENT = 800, 200
FAMILY = "HM Probe"


def _glyph(code: int, advance: int) -> object:
    """Bars whose count and heights follow the character's bits: distinct shapes, no outline data to ship."""
    pen = TTGlyphPen(None)
    if chr(code).isspace():
        return pen.glyph()
    top = 700 if chr(code).isupper() or chr(code).isdigit() else 500
    bars = 2 + code % 3
    width = (advance - 80) // bars
    for i in range(bars):
        x = 40 + i * width
        height = top - (120 if (code >> i) & 1 else 0)
        pen.moveTo((x, 0))
        pen.lineTo((x, height))
        pen.lineTo((x + width - 40, height))
        pen.lineTo((x + width - 40, 0))
        pen.closePath()
    return pen.glyph()


def write_probe_font(path: Path, family: str = FAMILY) -> Path:
    """A TrueType font covering printable ASCII, written to `path`."""
    codes = list(range(32, 127))
    names = {code: f"c{code}" for code in codes}
    advances = {code: 420 + (code * 37) % 380 for code in codes}
    fb = FontBuilder(UNITS_PER_EM, isTTF=True)
    fb.setupGlyphOrder([".notdef", *names.values()])
    fb.setupCharacterMap(names)
    glyphs = {".notdef": TTGlyphPen(None).glyph(), **{names[c]: _glyph(c, advances[c]) for c in codes}}
    fb.setupGlyf(glyphs)
    metrics = {".notdef": (500, 0)}
    for code in codes:
        glyph = glyphs[names[code]]
        metrics[names[code]] = (advances[code], getattr(glyph, "xMin", 0))
    fb.setupHorizontalMetrics(metrics)
    fb.setupHorizontalHeader(ascent=ASCENT, descent=-DESCENT)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=ASCENT, sTypoDescender=-DESCENT, usWinAscent=ASCENT, usWinDescent=DESCENT)
    fb.setupPost()
    path.parent.mkdir(parents=True, exist_ok=True)
    fb.save(str(path))
    return path
