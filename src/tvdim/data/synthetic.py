"""Built-in data: a deterministic generator of captioned images of coloured shapes.

Each image shows 1..``objects`` shapes on a noisy, low-contrast gradient background; the labels
(``shape``, ``colour``) refer to the LARGEST object and ``count`` to the number of objects. The captions
name every object's size, colour, shape and position with synonyms and varied word order. The data are
designed so that text carries what image augmentation destroys: AMDIM-style colour jitter and random
grayscale erase colour, while the captions always name it.

Everything is a pure function of ``(seed, split, index)``: a scene description (list of objects) and the
caption are drawn from ``numpy.random.default_rng([seed, split_id, index])`` before any pixel is drawn, so
captions (``captions()``, swapped captions) never need rendering.
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..config import DataConfig
from .sample import Sample

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 165, 45), "blue": (40, 70, 230), "yellow": (235, 215, 30),
    "purple": (160, 45, 205), "cyan": (30, 205, 215), "orange": (245, 135, 20), "white": (240, 240, 240)}
SIZES = ("small", "medium", "large")
ROWS, COLS = ("top", "middle", "bottom"), ("left", "centre", "right")
SPLITS = {"train": 0, "test": 1, "val": 2}

SHAPE_WORDS = (("circle", "disc", "round blob", "ball"), ("square", "box", "block"),
               ("triangle", "triangular shape", "wedge"), ("diamond", "rhombus", "lozenge"),
               ("cross", "plus sign", "plus"), ("star", "starburst", "five-pointed star"))
COLOUR_WORDS = (("red", "crimson", "scarlet"), ("green", "emerald", "jade"), ("blue", "cobalt", "navy"),
                ("yellow", "golden", "lemon"), ("purple", "violet", "plum"), ("cyan", "turquoise", "teal"),
                ("orange", "amber", "tangerine"), ("white", "snowy", "ivory"))
SIZE_WORDS = (("small", "tiny", "little"), ("medium", "mid-sized", "modest"), ("large", "big", "huge"))
# equivalent-circle radius (fraction of the image side) per size class: areas are equal across shapes
SIZE_RANGES = ((0.06, 0.085), (0.10, 0.13), (0.16, 0.20))
OBJ_TEMPLATES = ("{a} {size} {colour} {shape} {pos}", "{a} {colour} {size} {shape} {pos}",
                 "{a} {size} {shape} in {colour} {pos}", "{pos} {a} {size} {colour} {shape}",
                 "{a} {shape}, {size} and {colour}, {pos}")
OPENERS = ("{x}", "there is {x}", "the picture shows {x}", "an image of {x}", "we see {x}",
           "this scene contains {x}")
CONNECTORS = (" and ", "; beside it ", ", also ", ". there is also ", ", together with ", "; nearby, ")
DISTRACTORS = ("the photo was taken on a sunny day.", "nice picture.", "i like this one a lot.",
               "shot with an old camera.", "uploaded by a friend last week.", "what a lovely afternoon.",
               "the file was renamed twice.", "see more pictures on my page.")
_PER_OBJ = 9  # plan uniforms per object slot


@dataclass(frozen=True)
class Obj:
    """One object of a scene: class indices, equivalent radius ``s`` and centre (fractions of the side)."""

    shape: int
    colour: int
    size: int
    s: float
    x: float
    y: float
    rot: float
    shade: tuple[float, float, float]

    @property
    def cell(self) -> tuple[int, int]:
        """(row, col) of the 3x3 grid cell holding the centre."""
        return min(int(self.y * 3), 2), min(int(self.x * 3), 2)


def _pick(options, u: float):
    return options[min(int(u * len(options)), len(options) - 1)]


def _unit_points(shape: int) -> list[tuple[float, float]] | None:
    """Polygon of a shape with circumradius 1 (None for the circle)."""
    if shape == 1:
        return [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]
    if shape == 2:
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == 3:
        return [(0.0, -1.0), (0.7, 0.0), (0.0, 1.0), (-0.7, 0.0)]
    if shape == 4:
        w = 0.35
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w),
                (-1, -w), (-w, -w)]
    if shape == 5:
        return [((1.0 if k % 2 == 0 else 0.5) * math.cos(-math.pi / 2 + k * math.pi / 5),
                 (1.0 if k % 2 == 0 else 0.5) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    return None


def _area(points) -> float:
    if points is None:
        return math.pi
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1])))


_UNIT = [_unit_points(k) for k in range(len(SHAPES))]
_RGB = list(COLOURS.values())
_EXTENT = [math.sqrt(math.pi / _area(p)) for p in _UNIT]  # circumradius per unit equivalent radius


def _sample_scene(rng: np.random.Generator, max_objects: int) -> list[Obj]:
    """Draw the object list (largest first) without rendering anything."""
    n = int(rng.integers(1, max_objects + 1))
    big = 2 if rng.random() < 0.7 or n == 1 else 1
    sizes = [big] + [int(rng.integers(0, big)) for _ in range(n - 1)]
    objs: list[Obj] = []
    for size in sizes:
        shape, colour = int(rng.integers(len(SHAPES))), int(rng.integers(len(COLOURS)))
        s = float(rng.uniform(*SIZE_RANGES[size]))
        ext = s * _EXTENT[shape]
        best, best_gap = (0.5, 0.5), -1e9
        for _ in range(30):  # rejection sampling: no overlap of bounding circles if possible
            x, y = rng.uniform(ext + 0.02, 0.98 - ext, size=2)
            gap = min((math.hypot(x - o.x, y - o.y) - ext - o.s * _EXTENT[o.shape] for o in objs), default=1.0)
            if gap > best_gap:
                best, best_gap = (float(x), float(y)), gap
            if gap >= 0:
                break
        shade = tuple(float(v) for v in rng.uniform(0.8, 1.05) + rng.normal(0, 0.05, size=3))
        objs.append(Obj(shape, colour, size, s, best[0], best[1], float(rng.uniform(-0.25, 0.25)), shade))
    return objs


def _position(row: int, col: int, u: float, v: float) -> str:
    if row == 1 and col == 1:
        return _pick(("in the centre", "in the middle", "at the center"), u)
    if row == 1:
        return _pick(("on the {c}", "at the {c}", "towards the {c}"), u).format(c=COLS[col])
    r = _pick((("top", "upper"), (), ("bottom", "lower"))[row], v)
    if col == 1:
        return _pick(("at the {r}", "near the {r}", "towards the {r}"), u).format(r=ROWS[row])
    return _pick(("at the {r} {c}", "in the {r} {c} corner", "near the {r} {c}"), u).format(r=r, c=COLS[col])


def _caption(objs: list[tuple[int, int, int, int, int]], plan: np.ndarray) -> str:
    """Caption of described objects ``(shape, colour, size, row, col)``; ``plan`` holds the uniforms for
    every wording choice, so changing an attribute value changes only its word."""
    n = len(objs)
    order = list(range(n)) if plan[1] < 0.5 else [int(k) for k in np.argsort(plan[3:3 + n])]
    text = ""
    for rank, k in enumerate(order):
        shape, colour, size, row, col = objs[k]
        u = plan[3 + _PER_OBJ * k: 3 + _PER_OBJ * (k + 1)]
        phrase = _pick(OBJ_TEMPLATES if rank == 0 else OBJ_TEMPLATES[:3] + OBJ_TEMPLATES[4:], u[0]).format(
            a="\0", size=_pick(SIZE_WORDS[size], u[1]), colour=_pick(COLOUR_WORDS[colour], u[2]),
            shape=_pick(SHAPE_WORDS[shape], u[3]), pos=_position(row, col, u[4], u[5]))
        words = phrase.split(" ")
        for w, word in enumerate(words):
            if word == "\0":
                words[w] = "an" if words[w + 1][0] in "aeiou" else "a"
        phrase = " ".join(words)
        if rank == 0:  # a leading position phrase ("at the top a red disc") takes no opener
            text = phrase if phrase.startswith(("at", "in", "on", "near", "towards")) else \
                _pick(OPENERS, plan[0]).format(x=phrase)
        else:
            text += _pick(CONNECTORS, u[6]) + phrase
    return text + "."


class SyntheticCaptions(torch.utils.data.Dataset):
    """Map-style dataset of captioned shape images, deterministic in ``(seed, split, index)``.

    ``swap``: probability that the caption is the clean caption of another random index of the split;
    ``corrupt``: probability that each mentioned attribute (size, colour, shape, position) is replaced by a
    random wrong value; ``distract``: probability that an irrelevant sentence is appended.
    """

    def __init__(self, split: str = "train", n: int = 4000, seed: int = 0, image_size: int = 64,
                 objects: int = 3, swap: float = 0.0, corrupt: float = 0.0, distract: float = 0.0) -> None:
        if n < 1 or objects < 1 or image_size < 8:
            raise ValueError(f"need n >= 1, objects >= 1, image_size >= 8; got {n}, {objects}, {image_size}")
        self.split, self.n, self.seed, self.image_size, self.objects = split, n, seed, image_size, objects
        self.swap, self.corrupt, self.distract = swap, corrupt, distract
        self.split_id = SPLITS.get(split, zlib.crc32(split.encode()) & 0x7FFFFFFF)

    @property
    def tasks(self) -> dict[str, list[str]]:
        """Task name -> class names (label indices point into these lists)."""
        return {"shape": list(SHAPES), "colour": list(COLOURS),
                "count": [str(k) for k in range(1, self.objects + 1)]}

    def __len__(self) -> int:
        return self.n

    def _draws(self, i: int) -> tuple[np.random.Generator, list[Obj], np.ndarray, dict]:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} samples")
        rng = np.random.default_rng([self.seed, self.split_id, i])
        objs = _sample_scene(rng, self.objects)
        plan = rng.random(3 + _PER_OBJ * self.objects)
        j = int(rng.integers(self.n - 1)) if self.n > 1 else 0
        noise = {"swap": rng.random(), "other": j + (j >= i), "corrupt": rng.random((self.objects, 4, 2)),
                 "distract": rng.random(2)}
        return rng, objs, plan, noise

    def scene(self, i: int) -> list[Obj]:
        """Objects of sample ``i``, largest first (what the labels and the clean caption describe)."""
        return self._draws(i)[1]

    def clean_caption(self, i: int) -> str:
        """Caption of sample ``i`` without any noise."""
        _, objs, plan, _ = self._draws(i)
        return _caption([(o.shape, o.colour, o.size, *o.cell) for o in objs], plan)

    def caption(self, i: int) -> str:
        """Caption of sample ``i`` with the configured swap / corruption / distractor noise."""
        _, objs, plan, noise = self._draws(i)
        return self._noisy(objs, plan, noise)

    def _noisy(self, objs: list[Obj], plan: np.ndarray, noise: dict) -> str:
        if self.n > 1 and noise["swap"] < self.swap:
            _, objs, plan, _ = self._draws(noise["other"])
        described = []
        for k, o in enumerate(objs):
            values = [o.shape, o.colour, o.size, o.cell[0] * 3 + o.cell[1]]
            ranges = (len(SHAPES), len(COLOURS), len(SIZES), 9)
            for a, m in enumerate(ranges):
                hit, u = noise["corrupt"][k, a]
                if hit < self.corrupt:  # a random WRONG value
                    values[a] = (values[a] + 1 + int(u * (m - 1))) % m
            described.append((values[0], values[1], values[2], values[3] // 3, values[3] % 3))
        text = _caption(described, plan)
        if noise["distract"][0] < self.distract:
            text += " " + _pick(DISTRACTORS, noise["distract"][1])
        return text

    def captions(self) -> list[str]:
        """All captions of the split in index order, computed without rendering any image."""
        return [self.caption(i) for i in range(self.n)]

    def labels(self, i: int) -> dict[str, int]:
        """Class labels of sample ``i`` (shape and colour of the largest object, number of objects - 1)."""
        objs = self.scene(i)
        return {"shape": objs[0].shape, "colour": objs[0].colour, "count": len(objs) - 1}

    def render(self, i: int) -> Image.Image:
        """The RGB image of sample ``i`` (drawn at 2x and box-downsampled for anti-aliasing)."""
        rng, objs, _, _ = self._draws(i)
        return self._render(rng, objs)

    def _render(self, rng: np.random.Generator, objs: list[Obj]) -> Image.Image:
        big = 2 * self.image_size
        base = rng.uniform(50, 150) + rng.uniform(-15, 15, size=3)
        angle, amp = rng.uniform(0, 2 * math.pi), rng.uniform(10, 30)
        ramp = np.linspace(-1, 1, self.image_size, dtype=np.float32)
        grad = amp * (math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None])
        bg = (base.astype(np.float32)[None, None, :] + grad[:, :, None]).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(bg, "RGB").resize((big, big), Image.NEAREST)
        draw = ImageDraw.Draw(img)
        for o in objs:
            fill = tuple(int(min(255, max(0, c * f))) for c, f in zip(_RGB[o.colour], o.shade))
            r, cx, cy = o.s * _EXTENT[o.shape] * big, o.x * big, o.y * big
            if _UNIT[o.shape] is None:
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            else:
                c, s = math.cos(o.rot), math.sin(o.rot)
                draw.polygon([(cx + r * (c * px - s * py), cy + r * (s * px + c * py)) for px, py in _UNIT[o.shape]],
                             fill=fill)
        arr = np.asarray(img.reduce(2), dtype=np.int16)
        arr = arr + rng.integers(-12, 13, size=arr.shape, dtype=np.int16)
        return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")

    def __getitem__(self, i: int) -> Sample:
        rng, objs, plan, noise = self._draws(i)
        text = self._noisy(objs, plan, noise)
        labels = {"shape": objs[0].shape, "colour": objs[0].colour, "count": len(objs) - 1}
        return Sample(key=f"synth-{self.split}-{i:06d}", image=self._render(rng, objs), captions=[text],
                      labels=labels)


def build_synthetic(cfg: DataConfig, split: str, image_size: int | None = None) -> SyntheticCaptions:
    """Dataset for ``split`` from the ``synth_*`` fields of ``cfg``.

    ``train`` has ``synth_train`` samples; ``test`` and ``val`` have ``synth_test`` samples each (different
    streams). Caption noise (``synth_swap`` / ``synth_corrupt`` / ``synth_distract``) is applied to the
    ``train`` split only, so that held-out retrieval and probes are scored on clean captions. ``eval_train`` is
    the ``train`` images with clean captions (the probes' training set). ``image_size`` None renders 64 px.
    """
    noisy = split == "train"
    big = split in ("train", "eval_train")
    return SyntheticCaptions(split="train" if big else split, n=cfg.synth_train if big else cfg.synth_test,
                             seed=cfg.synth_seed, image_size=image_size or 64, objects=cfg.synth_objects,
                             swap=cfg.synth_swap if noisy else 0.0, corrupt=cfg.synth_corrupt if noisy else 0.0,
                             distract=cfg.synth_distract if noisy else 0.0)


def write_synthetic(out_dir: str | Path, n: int, split: str = "train", seed: int = 0, image_size: int = 64,
                    fmt: str = "jsonl", **kwargs) -> Path:
    """Write ``n`` samples as ``out_dir/images/*.png`` plus a caption table; return the table's path.

    ``fmt``: ``jsonl`` (``captions.jsonl``) or ``csv`` / ``tsv`` (``captions.csv`` / ``captions.tsv``), with
    fields ``filepath`` (relative to ``out_dir``), ``caption``, ``shape``, ``colour``, ``count`` (class
    names). ``kwargs`` go to :class:`SyntheticCaptions` (``objects``, ``swap``, ...).
    """
    if fmt not in ("jsonl", "csv", "tsv"):
        raise ValueError(f"fmt must be jsonl, csv or tsv; got {fmt!r}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    ds = SyntheticCaptions(split=split, n=n, seed=seed, image_size=image_size, **kwargs)
    rows = []
    for i in range(n):
        sample = ds[i]
        rel = f"images/{sample.key}.png"
        sample.image.save(out / rel)
        rows.append({"filepath": rel, "caption": sample.captions[0],
                     **{t: ds.tasks[t][sample.labels[t]] for t in ("shape", "colour", "count")}})
    table = out / f"captions.{fmt}"
    if fmt == "jsonl":
        table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import csv

        with table.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="," if fmt == "csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
    return table


__all__ = ["SyntheticCaptions", "build_synthetic", "write_synthetic", "SHAPES", "COLOURS", "SIZES", "Obj"]
