"""The words students read must state the facts of shared/reference/diffusion-science.md, and the
sentences an audit found wrong must not come back (in the app, the schedule/sampler/model descriptions,
the README and the docs)."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from diffusion_viz.forward import explain_pixel
from diffusion_viz.models.registry import MODELS
from diffusion_viz.sampling import SCHEDULER_DESCRIPTIONS
from diffusion_viz.schedules import SCHEDULE_DESCRIPTIONS, get_schedule
from diffusion_viz.ui import explain

ROOT = Path(__file__).resolve().parents[1]
ALL = " ".join(v for k, v in vars(explain).items() if k.isupper() and isinstance(v, str))
DESCRIPTIONS = " ".join([*SCHEDULE_DESCRIPTIONS.values(), *SCHEDULER_DESCRIPTIONS.values(),
                         *(m.description for m in MODELS.values())])
DOCS = {p.name: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                                        ROOT / "assets" / "emoji_unet" / "MODEL_CARD.md"]}
EVERYTHING = {"explain.py": ALL, "descriptions": DESCRIPTIONS, **DOCS}


def test_required_facts_are_stated():
    for fact in ("[−1, 1]", "64×64×4", "0.068", "all* of the noise", "0.47 %", "6.6", "10–50"):
        assert fact in ALL, fact


def test_the_myth_example_leaves_the_displayable_range_and_its_numbers_are_right():
    """The example must show what it claims: the formula's numbers, values outside [-1, 1], the clipped pixel."""
    row = next(line for line in explain.HOW_IT_WORKS.splitlines() if "kept inside 0..255" in line)
    nums = lambda s: [float(v.replace("−", "-")) for v in re.findall(r"[−-]?\d+(?:\.\d+)?", s)]  # noqa: E731
    ab = float(re.search(r"ᾱ = ([\d.]+)", row).group(1))
    pixel = tuple(int(v) for v in nums(re.search(r"pixel \(([^)]*)\)", row).group(1)))
    eps = nums(re.search(r"ε = \(([^)]*)\)", row).group(1))
    x_t = nums(re.search(r"x<sub>t</sub> = \(([^)]*)\)", row).group(1))
    shown = tuple(int(v) for v in nums(re.search(r"clipped pixel \(([^)]*)\)", row).group(1)))
    ref = explain_pixel(pixel, ab, eps)
    np.testing.assert_allclose(x_t, ref.x_t, atol=5e-4)
    assert shown == ref.displayed
    assert any(abs(v) > 1 for v in x_t), "the example must leave [-1, 1]"
    # the same numbers by hand: x0 = p/127.5 - 1, x_t = sqrt(ab) x0 + sqrt(1 - ab) eps
    for p, e, x in zip(pixel, eps, x_t):
        assert math.sqrt(ab) * (p / 127.5 - 1) + math.sqrt(1 - ab) * e == pytest.approx(x, abs=5e-4)


def test_the_four_myths_of_the_issue_are_corrected():
    table = explain.HOW_IT_WORKS.split("### Myths, corrected")[1]
    for myth in ("paints", "doesn't match the prompt", "0..255", "1000×1000", "t = 0"):
        assert myth in table, myth


def test_schedule_size_claim_has_the_right_direction():
    # Bigger images need noisier schedules (Chen 2023; Hoogeboom 2023), not smaller ones.
    assert "bigger pictures\nneed noisier schedules" in explain.HOW_IT_WORKS
    assert "Small pictures need noisier" not in ALL


# Sentences an audit found wrong. Each pattern is a claim, not a word: the correct version may use the
# same words ("the denoiser is exact" is right, "every sampler runs exactly" is not).
WRONG = {
    r"sampler runs exactly|every schedule and sampler runs exactly": "only the denoiser is exact, samplers are not",
    r"training never (saw|showed).{0,40}pure noise": "the exact model was never trained",
    r"0\.068 [×x] 12,?288": "evidence adds up like a square root: 0.068·√(12288·0.77) ≈ 6.6",
    r"no room to store|far too small to store|cannot store (them|1,361)": "26 Mbit of weights vs 12 Mbit of data",
    r"keeps? 6\.8 ?% of the signal": "6.8 % is amplitude; the power left is 0.47 %",
    r"0 = clean|t = 0 is (the )?clean": "t = 0 is one noising step",
    r"trained to (look at x<sub>t</sub> and )?predict ε\b(?!, or)": "both emoji models predict v",
    r"spends more steps in the middle": "sigmoid has 29.7 % of steps with |log-SNR| < 1, cosine 30.9 %",
    r"\(signal left\)|signal left:": "say whether it is power (ᾱ) or amplitude (√ᾱ)",
}


@pytest.mark.parametrize("pattern", list(WRONG))
def test_wrong_sentences_are_gone(pattern):
    found = [name for name, text in EVERYTHING.items() if re.search(pattern, text, re.IGNORECASE)]
    assert not found, f"{pattern!r} in {found}: {WRONG[pattern]}"


def test_sigmoid_description_numbers():
    """Its difference from cosine is the log-SNR range, with as many steps near log-SNR 0."""
    sig, cos = get_schedule("sigmoid").log_snr, get_schedule("cosine").log_snr
    near = lambda ls: 100 * np.mean(np.abs(ls) < 1)  # noqa: E731
    assert near(sig) == pytest.approx(29.7, abs=0.05) and near(cos) == pytest.approx(30.9, abs=0.05)
    text = SCHEDULE_DESCRIPTIONS["sigmoid"]
    assert f"({round(near(sig))} % of them)" in text
    assert f"+{sig[0]:.1f} to {sig[-2]:.1f}" in text and f"+{cos[0]:.1f} to {cos[-2]:.1f}" in text


def test_prompt_table_says_it_is_a_prior():
    from diffusion_viz.ui.logic import conditioning_markdown

    md = conditioning_markdown({"kind": "emoji", "prompt": "a red apple",
                                "matches": [{"label": "x red apple", "weight": 0.93}]})
    assert "prior" in md and "before any noise is seen" in md and "not the chance of the result" in md
