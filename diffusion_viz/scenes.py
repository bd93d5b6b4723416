"""Compositional emoji scenes with captions: the data for a miniature latent model (issue "Stable Diffusion
in miniature"), generated on the fly from the shipped emoji, seeded, so nothing needs to be stored.

A scene is a 64x64 RGB picture of one or two emoji, each at a slot (left/right, top/bottom, centre) and a
size (small 24 px, big 40 px), on a named background, with a caption from a small grammar:
"a cat", "a big rocket at night", "a cat next to a rocket", "a rocket above a cat on grass".
About 20 % of the unordered pairs of objects never appear together in training (``held_out_pair``): a
fixed set of captions that tests composition.

``read_scene`` is the adherence scorer: for each slot a caption names, the vocabulary emoji that best
matches that place at that size (each candidate rendered on the scene's own background colour, RMS over
the slot's box). On the generator's own scenes it must read the right object (tests/test_scenes.py).
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


@dataclass(frozen=True)
class Scene:
    objects: tuple[Placed, ...]  # one or two
    background: str  # a BACKGROUNDS key

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


def _box(slot: str, px: int) -> tuple[int, int]:
    cx, cy = SLOTS[slot]
    return cy - px // 2, cx - px // 2  # top, left


def render(scene: Scene) -> np.ndarray:
    """The scene as (64, 64, 3) uint8."""
    canvas = np.empty((SIZE, SIZE, 3), np.float32)
    canvas[:] = BACKGROUNDS[scene.background]
    for o in scene.objects:
        px = OBJECT_SIZES[o.size]
        rgb, alpha = sprite(o.word, px)
        top, left = _box(o.slot, px)
        region = canvas[top:top + px, left:left + px]
        region[:] = alpha[..., None] * rgb + (1 - alpha[..., None]) * region
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def random_scene(rng: np.random.Generator, split: str = "train") -> Scene:
    """One scene: in training half are one object (centre, small or big), half pairs; held out: pairs only."""
    words = sorted(VOCABULARY)
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    if split == "train" and rng.random() < 0.5:
        size = "big" if rng.random() < 0.5 else "small"
        return Scene((Placed(words[rng.integers(len(words))], "centre", size),), background)
    while True:
        a, b = (words[i] for i in rng.choice(len(words), 2, replace=False))
        if held_out_pair(a, b) == (split == "heldout"):
            break
    first, second = PAIR_LAYOUTS[list(PAIR_LAYOUTS)[rng.integers(len(PAIR_LAYOUTS))]]
    return Scene((Placed(a, first, "small"), Placed(b, second, "small")), background)


def scenes(n: int, seed: int = 0, split: str = "train") -> list[Scene]:
    if split not in ("train", "heldout"):
        raise InvalidInputError(f"split is 'train' or 'heldout', got {split!r}.")
    rng = np.random.default_rng(seed)
    return [random_scene(rng, split) for _ in range(n)]


def background_of(rgb: np.ndarray) -> tuple[int, int, int]:
    """The scene's background colour: the median of its border pixels."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def read_slot(rgb: np.ndarray, slot: str, size: str, background=None) -> tuple[str, float]:
    """The vocabulary emoji that best explains the picture at this slot and size, and its RMS (0..255)."""
    bg = np.asarray(background if background is not None else background_of(rgb), np.float32)
    px = OBJECT_SIZES[size]
    top, left = _box(slot, px)
    seen = np.asarray(rgb, np.float32)[top:top + px, left:left + px]
    best, best_rms = "", float("inf")
    for word in VOCABULARY:
        s, a = sprite(word, px)
        guess = a[..., None] * s + (1 - a[..., None]) * bg
        rms = float(np.sqrt(np.mean((guess - seen) ** 2)))
        if rms < best_rms:
            best, best_rms = word, rms
    return best, best_rms


def read_scene(rgb: np.ndarray, scene: Scene) -> list[tuple[str, float]]:
    """For each object the caption names, what is at its slot (word, RMS): the adherence scorer."""
    bg = background_of(rgb)
    return [read_slot(rgb, o.slot, o.size, bg) for o in scene.objects]


def adheres(rgb: np.ndarray, scene: Scene) -> bool:
    """Every named object is read back at its place."""
    return [w for w, _ in read_scene(rgb, scene)] == [o.word for o in scene.objects]
