"""Words to know: one line each, true (shared/reference/diffusion-science.md), for a 14-year-old and their
teacher.

``GLOSSARY`` keeps the order of the "How it works" table; ``glossary_markdown()`` is that table;
``glossary_html_title(term)`` is plain text for a ``title`` or ``aria-label`` attribute (escape it as any
attribute value when placing it: it holds no markup, but the caller owns the quoting).
"""

from __future__ import annotations

from .errors import UnknownNameError

GLOSSARY: dict[str, str] = {
    "ᾱ (alpha-bar)": "The share of the picture's power left at noise level t; the amplitude left is √ᾱ. "
                     "ᾱ = 0.25 keeps a quarter of the power and half of the amplitude.",
    "SNR": "Signal-to-noise ratio, ᾱ / (1 − ᾱ): the picture's power divided by the noise's power. "
           "SNR = 1 means equal parts.",
    "log-SNR": "The natural logarithm of the SNR: 0 where picture and noise are equal, above 0 when the picture "
               "is stronger. The fair axis for comparing schedules.",
    "schedule": "The rule that sets ᾱ for every training step t from 0 to 999: how fast the forward process "
                "destroys the picture (linear, cosine, scaled_linear…).",
    "sampler": "The rule that uses the model's prediction to turn one noisy picture into a slightly less noisy "
               "one (DDIM, DPM-Solver++…). Good ones need 10–50 steps.",
    "step": "One move of the sampler: ask the model, then move x_t part of the way towards its guess. A 50-step "
            "DDIM run visits 50 of the 1000 noise levels t.",
    "seed": "The number that picks the random static a run starts from: the same seed and the same settings "
            "give the same picture every time.",
    "guidance": "The model predicts the noise with and without the prompt, then pushes g times their difference "
                "away from the no-prompt one. g = 1: the plain prompt; SD uses 7.5.",
    "latent": "A compressed stand-in for a picture. Stable Diffusion denoises a 64×64×4 latent for a 512×512 "
              "picture, and a decoder turns it into pixels at the end.",
    "x0 guess (predicted clean picture)": "The model's guess of the whole clean picture at the current step, "
                                          "worked out from its prediction: blurry early on, sharp at the end.",
    "ε / v (what the network predicts)": "ε is all of the noise in x_t; v = √ᾱ·ε − √(1−ᾱ)·x0 mixes noise and "
                                        "picture. Either one gives the x0 guess; both emoji models here predict v.",
}

# Other spellings a page may use for the same word (lower case).
ALIASES = {
    "ᾱ": "ᾱ (alpha-bar)", "alpha-bar": "ᾱ (alpha-bar)", "alpha bar": "ᾱ (alpha-bar)", "abar": "ᾱ (alpha-bar)",
    "alpha_bar": "ᾱ (alpha-bar)", "signal-to-noise ratio": "SNR", "log snr": "log-SNR", "noise schedule": "schedule",
    "scheduler": "sampler", "steps": "step", "classifier-free guidance": "guidance", "latents": "latent",
    "x0 guess": "x0 guess (predicted clean picture)", "x0": "x0 guess (predicted clean picture)",
    "predicted x0": "x0 guess (predicted clean picture)", "predicted clean picture": "x0 guess (predicted clean picture)",
    "ε": "ε / v (what the network predicts)", "v": "ε / v (what the network predicts)",
    "epsilon": "ε / v (what the network predicts)", "ε / v": "ε / v (what the network predicts)",
}


def lookup(term: str) -> str:
    """The glossary's own name for ``term`` (any case, or an alias such as "alpha-bar" or "x0")."""
    if term in GLOSSARY:
        return term
    key = str(term).strip().lower()
    for name in GLOSSARY:
        if name.lower() == key:
            return name
    if key in ALIASES:
        return ALIASES[key]
    raise UnknownNameError("glossary term", term, GLOSSARY)


def glossary_markdown() -> str:
    """A two-column table for the "How it works" tab."""
    rows = "\n".join(f"| **{term}** | {text} |" for term, text in GLOSSARY.items())
    return f"### Words to know\n\n| Word | What it means |\n|---|---|\n{rows}\n"


def glossary_html_title(term: str) -> str:
    """"term: definition" as plain text (no markup) for a title or aria-label attribute."""
    name = lookup(term)
    return f"{name}: {GLOSSARY[name]}"
