"""Drawing primitives of the embedded scenes: shape masks and textures (private)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPES", "TEXTURES", "shape_mask", "texture"]

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "diamond", "crescent", "ring", "arrow", "heart",
          "pentagon", "octagon", "trapezoid", "parallelogram", "ell", "tee", "hourglass", "semicircle", "ellipse")
TEXTURES = ("stripes", "dots", "checks", "solid", "rings", "zigzag", "grid", "diagonal")


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def regular(n: int, radius: float = r, phase: float = 0.0):
        return [(cx + radius * math.cos(rot + phase + 2 * math.pi * k / n), cy + radius * math.sin(rot + phase + 2 * math.pi * k / n)) for k in range(n)]

    if shape == "square":
        return regular(4, r, math.pi / 4)
    if shape == "triangle":
        return regular(3)
    if shape == "hexagon":
        return regular(6)
    if shape == "pentagon":
        return regular(5)
    if shape == "octagon":
        return regular(8, r, math.pi / 8)
    if shape == "diamond":
        return [(cx + r * 0.6 * math.cos(rot), cy + r * 0.6 * math.sin(rot)), (cx - r * math.sin(rot), cy + r * math.cos(rot)),
                (cx - r * 0.6 * math.cos(rot), cy - r * 0.6 * math.sin(rot)), (cx + r * math.sin(rot), cy - r * math.cos(rot))]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = rot + math.pi * k / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    if shape == "cross":
        w = r * 0.35
        base = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    elif shape == "arrow":
        base = [(-r, -0.3 * r), (0.2 * r, -0.3 * r), (0.2 * r, -0.8 * r), (r, 0), (0.2 * r, 0.8 * r), (0.2 * r, 0.3 * r), (-r, 0.3 * r)]
    elif shape == "trapezoid":
        base = [(-r, 0.6 * r), (r, 0.6 * r), (0.45 * r, -0.6 * r), (-0.45 * r, -0.6 * r)]
    elif shape == "parallelogram":
        base = [(-r, 0.5 * r), (0.4 * r, 0.5 * r), (r, -0.5 * r), (-0.4 * r, -0.5 * r)]
    elif shape == "ell":
        base = [(-0.7 * r, -r), (-0.15 * r, -r), (-0.15 * r, 0.45 * r), (0.8 * r, 0.45 * r), (0.8 * r, r), (-0.7 * r, r)]
    elif shape == "tee":
        base = [(-r, -r), (r, -r), (r, -0.45 * r), (0.28 * r, -0.45 * r), (0.28 * r, r), (-0.28 * r, r), (-0.28 * r, -0.45 * r),
                (-r, -0.45 * r)]
    elif shape == "hourglass":
        base = [(-0.8 * r, -r), (0.8 * r, -r), (0.15 * r, 0), (0.8 * r, r), (-0.8 * r, r), (-0.15 * r, 0)]
    elif shape == "semicircle":
        base = [(r * math.cos(t), -r * math.sin(t) + 0.4 * r) for t in np.linspace(0, math.pi, 24)]
    elif shape == "ellipse":
        base = [(r * math.cos(t), 0.5 * r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
    elif shape == "heart":
        base = [(r * 16 * math.sin(t) ** 3 / 17, -r * (13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) / 17)
                for t in np.linspace(0, 2 * math.pi, 40, endpoint=False)]
    else:
        raise ValueError(shape)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]


def shape_mask(shape: str, size: tuple[int, int], cx: float, cy: float, r: float, rot: float) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55], fill=0)
    elif shape == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = 0.45 * r * math.cos(rot), 0.45 * r * math.sin(rot)
        draw.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r, cy + oy + 0.85 * r], fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, rot), fill=255)
    return mask


def texture(kind: str, size: tuple[int, int], c1, c2, period: float, rot: float) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xx * math.cos(rot) + yy * math.sin(rot)
    v = -xx * math.sin(rot) + yy * math.cos(rot)
    if kind == "solid":
        sel = np.zeros((h, w), bool)
    elif kind == "stripes":
        sel = (u // (period / 2)) % 2 == 0
    elif kind == "diagonal":
        sel = ((u + v) // (period / 2)) % 2 == 0
    elif kind == "checks":
        sel = ((u // (period / 2)) + (v // (period / 2))) % 2 == 0
    elif kind == "dots":
        sel = ((u % period - period / 2) ** 2 + (v % period - period / 2) ** 2) < (period * 0.28) ** 2
    elif kind == "rings":
        sel = (np.sqrt((xx - w / 2) ** 2 + (yy - h / 2) ** 2) // (period / 2)) % 2 == 0
    elif kind == "zigzag":
        sel = ((u + np.abs((v % period) - period / 2)) // (period / 2)) % 2 == 0
    elif kind == "grid":
        sel = ((u % period) < period * 0.25) | ((v % period) < period * 0.25)
    else:
        raise ValueError(kind)
    out = np.where(sel[..., None], np.array(c2, np.uint8), np.array(c1, np.uint8))
    return Image.fromarray(out.astype(np.uint8), "RGB")
