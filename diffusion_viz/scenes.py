"""Compositional emoji scenes with captions: the data for a miniature latent model (issue "Stable Diffusion
in miniature"), generated on the fly from the shipped emoji, seeded, so nothing needs to be stored.

A scene is a 64x64 RGB picture of one or two emoji, each at a slot (left/right, top/bottom, centre) and a
size (small 24 px, big 40 px), on a named background, with a caption from a small grammar:
"a cat", "a big rocket at night", "a cat next to a rocket", "a rocket above a cat on grass".
About 20 % of the unordered pairs of objects never appear together in training (``held_out_pair``): a
fixed set of captions that tests composition. With a ``Variation`` the objects are nudged a few pixels
within their slots and the background's colour is shaded, so that a caption has thousands of pictures
rather than one (what emoji-ldm's last training stage saw; without it a model that draws a caption
exactly must redraw a training scene).

``read_scene`` is the adherence scorer: for each slot a caption names, the vocabulary emoji that best
matches that place at that size (each candidate rendered on the scene's own background colour, RMS over
the slot's box, the box moved up to ``MAX_NUDGE`` pixels). On the generator's own scenes it must read
the right object (tests/test_scenes.py).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .data import load_emoji
from .errors import InvalidInputError

SIZE = 64
# word a child would type -> the emoji's Unicode name in the dataset
VOCABULARY = {
    **{w: w for w in (
        "cat dog rabbit mouse cow pig horse monkey tiger chicken penguin bird duck owl fish dolphin whale octopus "
        "snail butterfly turtle snake crocodile elephant kangaroo pear lemon banana watermelon grapes strawberry "
        "cherries peach pineapple carrot broccoli mushroom bread taco cookie doughnut lollipop candy egg bus taxi "
        "bicycle airplane rocket ship sailboat train tractor ambulance helicopter guitar trumpet violin umbrella "
        "key hammer cactus sunflower tulip rose rainbow snowman ghost crown balloon").split()},
    "hot dog": "hot dog", "ice cream": "ice cream", "fire engine": "fire engine", "police car": "police car",
    "fox": "fox face", "lion": "lion face", "bear": "bear face", "panda": "panda face", "frog": "frog face",
    "bee": "honeybee", "ladybug": "lady beetle", "giraffe": "giraffe face", "camel": "dromedary camel",
    "zebra": "zebra face", "apple": "red apple", "orange": "tangerine", "corn": "ear of maize",
    "cheese": "cheese wedge", "pizza": "slice of pizza", "cake": "birthday cake", "car": "automobile",
    "motorcycle": "racing motorcycle", "ball": "soccer ball", "football": "american football",
    "drum": "drum with drumsticks", "book": "closed book", "scissors": "black scissors", "clock": "alarm clock",
    "house": "house building", "tree": "deciduous tree", "star": "glowing star", "moon": "crescent moon",
    "sun": "sun with face", "robot": "robot face", "alien": "extraterrestrial alien", "gift": "wrapped present",
}
BACKGROUNDS = {"": (255, 255, 255), "on a blue background": (70, 120, 220), "at night": (22, 26, 64),
               "on grass": (76, 158, 72)}
OBJECT_SIZES = {"small": 24, "big": 40}
# slot -> centre (x, y) of the object in the 64x64 scene
SLOTS = {"centre": (32, 32), "left": (17, 32), "right": (47, 32), "top": (32, 17), "bottom": (32, 47)}
PAIR_LAYOUTS = {"next to": ("left", "right"), "above": ("top", "bottom")}
HELD_OUT_SHARE = 0.2
WHITE = 245  # emoji are rendered on white: brighter pixels (in all channels) are background


SOME = {"cherries", "grapes", "bread", "cheese", "corn", "candy", "ice cream", "broccoli"}  # "some cherries"


def a(word: str, adjective: str = "") -> str:
    """The word with its article: "a cat", "an owl", "a big owl", "some grapes"."""
    phrase = f"{adjective} {word}".strip()
    if word in SOME:
        return f"some {phrase}"
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


@dataclass(frozen=True)
class Placed:
    word: str  # a VOCABULARY key
    slot: str  # a SLOTS key
    size: str  # an OBJECT_SIZES key
    dx: int = 0  # nudge from the slot's centre, pixels (|dx|, |dy| <= MAX_NUDGE[slot]); the caption is the same
    dy: int = 0


@dataclass(frozen=True)
class Variation:
    """How far a scene may stray from its caption's exact layout: objects nudged up to ``nudge`` pixels
    from their slot's centre (``centre_nudge`` for a lone object in the centre, which has room), the
    background's colour shifted up to ``shade`` levels per channel. Zero: every caption has one exact
    picture (848 one-object scenes), so a model that follows a caption exactly must redraw a training
    scene; with variation a caption has thousands of pictures."""
    nudge: int = 0
    centre_nudge: int = 0
    shade: int = 0


# the scorer looks this far around each slot (a pair's slots leave 6 px between their objects)
MAX_NUDGE = {"centre": 6, "left": 3, "right": 3, "top": 3, "bottom": 3}


@dataclass(frozen=True)
class Scene:
    objects: tuple[Placed, ...]  # one or two
    background: str  # a BACKGROUNDS key
    shade: tuple[int, int, int] = (0, 0, 0)  # added to the background's named colour

    @property
    def caption(self) -> str:
        bg = f" {self.background}" if self.background else ""
        if len(self.objects) == 1:
            (o,) = self.objects
            return a(o.word, "big" if o.size == "big" else "") + bg
        first, second = self.objects
        relation = next(r for r, slots in PAIR_LAYOUTS.items() if (first.slot, second.slot) == slots)
        return f"{a(first.word)} {relation} {a(second.word)}{bg}"


def held_out_pair(a: str, b: str) -> bool:
    """Whether the unordered pair {a, b} is kept out of training (about 20 % of pairs, fixed)."""
    key = "|".join(sorted((a, b))).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") / 2**32 < HELD_OUT_SHARE


@functools.lru_cache(maxsize=1)
def _sprites64() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each vocabulary emoji at 64 px with its foreground mask (not-white pixels)."""
    data = load_emoji(64)
    names = {str(n): i for i, n in enumerate(data.names)}
    missing = [name for name in VOCABULARY.values() if name not in names]
    if missing:
        raise InvalidInputError(f"Vocabulary emoji missing from the dataset: {missing}")
    out = {}
    for word, name in VOCABULARY.items():
        rgb = data.images[names[name]]
        out[word] = (rgb, (rgb < WHITE).any(axis=2).astype(np.float32))
    return out


@functools.lru_cache(maxsize=512)
def sprite(word: str, px: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb float32 (px, px, 3), alpha float32 (px, px)) of a vocabulary emoji at px pixels."""
    rgb, mask = _sprites64()[word]
    small = np.asarray(Image.fromarray(rgb).resize((px, px), Image.LANCZOS), dtype=np.float32)
    alpha = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((px, px), Image.BILINEAR),
                       dtype=np.float32) / 255.0
    return small, alpha


def _box(slot: str, px: int, dx: int = 0, dy: int = 0) -> tuple[int, int]:
    cx, cy = SLOTS[slot]
    return cy + dy - px // 2, cx + dx - px // 2  # top, left


def background_colour(scene: Scene) -> np.ndarray:
    """The named colour plus the scene's shade, reflected back into 0..255 (white varies towards grey)."""
    v = np.add(BACKGROUNDS[scene.background], scene.shade)
    return np.where(v > 255, 510 - v, np.abs(v)).astype(np.float32)


def render(scene: Scene) -> np.ndarray:
    """The scene as (64, 64, 3) uint8."""
    canvas = np.empty((SIZE, SIZE, 3), np.float32)
    canvas[:] = background_colour(scene)
    for o in scene.objects:
        px = OBJECT_SIZES[o.size]
        rgb, alpha = sprite(o.word, px)
        top, left = _box(o.slot, px, o.dx, o.dy)
        region = canvas[top:top + px, left:left + px]
        region[:] = alpha[..., None] * rgb + (1 - alpha[..., None]) * region
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def random_scene(rng: np.random.Generator, split: str = "train", variation: Variation = Variation()) -> Scene:
    """One scene: in training half are one object (centre, small or big), half pairs; held out: pairs only.
    Without variation the draws are those of the first emoji-ldm's training (its stream stays reproducible)."""
    words = sorted(VOCABULARY)
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    if split == "train" and rng.random() < 0.5:
        size = "big" if rng.random() < 0.5 else "small"
        objects = (Placed(words[rng.integers(len(words))], "centre", size),)
    else:
        while True:
            a, b = (words[i] for i in rng.choice(len(words), 2, replace=False))
            if held_out_pair(a, b) == (split == "heldout"):
                break
        first, second = PAIR_LAYOUTS[list(PAIR_LAYOUTS)[rng.integers(len(PAIR_LAYOUTS))]]
        objects = (Placed(a, first, "small"), Placed(b, second, "small"))
    return vary(Scene(objects, background), rng, variation)


def vary(scene: Scene, rng: np.random.Generator, variation: Variation) -> Scene:
    """The scene with its objects nudged and its background shaded at random, within ``variation``
    (unchanged, drawing nothing, for no variation)."""
    if variation == Variation():
        return scene

    def nudged(o: Placed) -> Placed:
        n = variation.centre_nudge if o.slot == "centre" else variation.nudge
        return Placed(o.word, o.slot, o.size, *(int(v) for v in rng.integers(-n, n + 1, 2)))

    objects = tuple(nudged(o) for o in scene.objects)
    shade = tuple(int(v) for v in rng.integers(-variation.shade, variation.shade + 1, 3))
    return Scene(objects, scene.background, shade)


def scenes(n: int, seed: int = 0, split: str = "train", variation: Variation = Variation()) -> list[Scene]:
    if split not in ("train", "heldout"):
        raise InvalidInputError(f"split is 'train' or 'heldout', got {split!r}.")
    if not (0 <= variation.nudge <= MAX_NUDGE["left"] and 0 <= variation.centre_nudge <= MAX_NUDGE["centre"]
            and variation.shade >= 0):
        raise InvalidInputError(f"nudge is 0 to {MAX_NUDGE['left']} pixels, centre_nudge 0 to "
                                f"{MAX_NUDGE['centre']}, shade >= 0; got {variation}.")
    rng = np.random.default_rng(seed)
    return [random_scene(rng, split, variation) for _ in range(n)]


def background_of(rgb: np.ndarray) -> tuple[int, int, int]:
    """The scene's background colour: the median of its border pixels."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


@functools.lru_cache(maxsize=4)
def _stack(px: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every vocabulary emoji at px pixels: words, rgb (W, px, px, 3), alpha (W, px, px, 1)."""
    words = list(VOCABULARY)
    pairs = [sprite(w, px) for w in words]
    return words, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])[..., None]


def read_slot(rgb: np.ndarray, slot: str, size: str, background=None) -> tuple[str, float]:
    """The vocabulary emoji that best explains the picture at this slot and size, nudged up to
    MAX_NUDGE[slot] pixels, and its RMS (0..255)."""
    bg = np.asarray(background if background is not None else background_of(rgb), np.float32)
    px = OBJECT_SIZES[size]
    words, sprites, alphas = _stack(px)
    guesses = alphas * sprites + (1 - alphas) * bg  # (W, px, px, 3)
    picture = np.asarray(rgb, np.float32)
    best = np.full(len(words), np.inf, np.float32)
    n = MAX_NUDGE[slot]
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            top, left = _box(slot, px, dx, dy)
            seen = picture[top:top + px, left:left + px]
            best = np.minimum(best, ((guesses - seen) ** 2).mean(axis=(1, 2, 3)))
    i = int(np.argmin(best))
    return words[i], float(np.sqrt(best[i]))


def read_scene(rgb: np.ndarray, scene: Scene) -> list[tuple[str, float]]:
    """For each object the caption names, what is at its slot (word, RMS): the adherence scorer."""
    bg = background_of(rgb)
    return [read_slot(rgb, o.slot, o.size, bg) for o in scene.objects]


def adheres(rgb: np.ndarray, scene: Scene) -> bool:
    """Every named object is read back at its place."""
    return [w for w, _ in read_scene(rgb, scene)] == [o.word for o in scene.objects]
