"""The words next to the controls: short, correct, for a 14-year-old and their teacher.

Facts follow shared/reference/diffusion-science.md. Each myth students (and adults) bring is named and
corrected where the picture that disproves it is on screen.
"""

INTRO = (
    "### Watch noise turn into a picture\n"
    "A diffusion model starts from random static and, step by step, guesses what picture is hidden in it. "
    "Press **Generate**, then drag the step slider."
)

DENOISE_PANELS = (
    "**Left: what the model sees** (x<sub>t</sub>): the current noisy picture. "
    "**Middle: what it thinks the finished picture is** (predicted x<sub>0</sub>): at *every* step the "
    "network guesses the *whole* clean picture at once (early guesses are blurry averages). "
    "**Right: the noise it thinks is in there** (predicted ε). The sampler then moves x<sub>t</sub> a small "
    "part of the way towards its guess, and asks again.\n\n"
    "**Myth: “the AI paints the picture stroke by stroke.”** It does not: look at the middle panel. "
    "There is always a complete picture; each step only makes the guess sharper."
)

PROMPT_HELP = (
    "**What the prompt does.** The model always predicts *all* of the noise. The prompt changes that "
    "prediction, and so steers which picture comes out.\n\n"
    "**Myth: “it removes the noise that doesn't match the prompt.”** There is no “matching” and "
    "“non-matching” noise: every step removes an estimate of the whole noise, and the prompt only changes "
    "the estimate."
)

GUIDANCE_HELP = (
    "**Guidance** (classifier-free guidance): the model predicts the noise twice, with and without the "
    "prompt, and pushes *past* the prompt's prediction: ε = ε<sub>no prompt</sub> + g · (ε<sub>prompt</sub> "
    "− ε<sub>no prompt</sub>). g = 1 is the plain prompt; bigger g follows the prompt harder but with "
    "less variety. Stable Diffusion uses 7.5."
)

SEED_HELP = (
    "**Seed**: which random static we start from. Same seed + same settings = the same picture, every time. "
    "Other seed = other static = other picture."
)

SAMPLER_HELP = (
    "**Sampler**: the rule for moving from one noisy picture to a slightly cleaner one. "
    "You do not need 1000 steps: DDIM and DPM-Solver++ do well in 10–50."
)

SCHEDULE_HELP = (
    "**Noise schedule**: how quickly training destroys the picture as t goes from 0 to 999. "
    "A real lesson hides here: with Stable Diffusion's *scaled_linear* schedule, even the last training "
    "step keeps √ᾱ = 0.068 of the picture. Spread over the 12,288 numbers of a 64×64 emoji, that leftover "
    "still gives a lot away, so training never showed the model pure noise, yet sampling starts from pure "
    "noise. The mismatch can override the prompt (try “cat” with scaled_linear: you may get a snake or a "
    "dog). Stable Diffusion has the same mismatch, which is why it struggles with very dark or very bright "
    "pictures (Lin et al. 2024). *cosine* and *linear* reach (almost) pure noise and work."
)

FORWARD_INTRO = (
    "### Forward noising: how training makes its examples\n"
    "Training takes a real picture and jumps straight to any noise level t in one formula:\n\n"
    "**x<sub>t</sub> = √ᾱ<sub>t</sub> · x<sub>0</sub> + √(1 − ᾱ<sub>t</sub>) · ε**\n\n"
    "ᾱ (alpha-bar) is how much signal is left. The network is trained to look at x<sub>t</sub> and predict ε. "
    "All schedules below use the **same** noise ε, so the only difference is the schedule."
)

FORWARD_MYTH = (
    "**Myth: “noise is added to the colours and kept inside 0..255.”** "
    "Pixels are first mapped from 0..255 to **[−1, 1]**. The picture is *shrunk* by √ᾱ and then "
    "Gaussian noise is added, which has no limits: values leave [−1, 1] (see the histogram) and the "
    "screen simply clips them. Click any noisy picture to see the sum for one pixel."
)

COMPARE_INTRO = (
    "### Compare runs\n"
    "Same prompt, same seed, up to four settings. One slider moves every column to the same *fraction* "
    "of its run, so a 10-step and a 50-step run stay lined up. The plot shows where each run spends its "
    "steps on the log-SNR axis (left: mostly noise, right: mostly picture): that is the fair way to compare "
    "schedules and samplers."
)

MEMORIZE_INTRO = (
    "### Memorize vs generalize\n"
    "Two models draw the **same prompt from the same static** (same seed, same sampler). Next to each "
    "picture: the closest training emoji and its distance (0 = identical)."
)

MEMORIZE_WHY = (
    "**Why the exact denoiser copies.** It is the *perfect* denoiser for its 1,361 training emoji: at "
    "every step its guess is a weighted average of exactly those pictures, and at the end one of them "
    "wins. It can only give back pictures it was shown. That is **memorization**.\n\n"
    "**Why the network makes something new.** It has about 1.6 million numbers (its weights) for "
    "1,361 pictures × 3,072 numbers each (32 × 32 pixels × 3 colours), about 4.2 million. There is no "
    "room to store every picture, so it has to learn patterns (colours, round shapes, eyes) and mix "
    "them. That is **generalization**: its pictures are new, often blurry mixes.\n\n"
    "**Honest note:** this network is under-trained (it learned for about three hours, on an ordinary "
    "processor): about 6 in 10 of its pictures look like the prompt, the rest only have its colours and "
    "rough shape. More training would help it follow the prompt; it would still be far too small to store all "
    "1,361 pictures.\n\n"
    "**The distance** is the RMS (root mean square) difference per pixel value, with pixels running "
    "from −1 to 1. Below 0.1 the eye sees the same picture: a copy.\n\n"
    "**Real models memorize too** when they are too big for their data or trained too long on it "
    "(especially on pictures that appear many times): researchers have pulled near-copies of training "
    "images out of Stable Diffusion (Carlini et al. 2023). Generalizing is what we want from them."
)

HOW_IT_WORKS = """
## How it works

**Forward (training): destroy on purpose.** Take a real picture, map its pixels from 0..255 to [−1, 1],
shrink it by √ᾱ<sub>t</sub> and add Gaussian noise times √(1 − ᾱ<sub>t</sub>). At t = 0 it is almost the
picture, at t = 999 it is (almost) only noise. The network is shown millions of these and learns one
job: *look at a noisy picture, predict the noise that was added* (or, equivalently, the clean picture).

**Reverse (making a picture): repair step by step.** Start from pure random static. Ask the network
“what noise is in here?”. Its answer gives a guess of the *whole* clean picture. Move a little way
towards that guess, which leaves a slightly less noisy picture, and ask again. Fifty small steps later
the static has become a picture.

**What the model predicts.** Always *all* of the noise, at every step, never “just the bits that
don't match”. From that, the predicted clean picture is x̂<sub>0</sub> = (x<sub>t</sub> − √(1 − ᾱ) ε̂) / √ᾱ:
the middle panel of the Denoise tab.

**What the prompt does.** The prompt is turned into numbers (a text encoder) and given to the network
with every step. It changes the noise prediction, so it steers which picture the steps lead to. Here
you can see it: the Denoise tab shows which emoji a prompt points to and how strongly.

**Guidance.** Predict twice, with and without the prompt, and push past the prompt's answer. Stronger
guidance = more “on prompt”, less variety.

**Why schedules matter.** A schedule decides how much signal is left at each step. The fair way to
compare schedules is the log signal-to-noise ratio (log SNR). Picture size matters: in a bigger
picture neighbouring pixels repeat each other, so the same noise level hides less, and bigger pictures
need noisier schedules (Chen 2023; Hoogeboom et al. 2023). The other way round, the linear schedule
wipes out small pictures too early: many of its last steps are almost pure noise (Nichol & Dhariwal
2021). And if training never reaches pure noise (Stable Diffusion's schedule keeps 6.8 % of the signal
at its last step) but sampling starts from pure noise, the model meets something it has never seen.

### Myths, corrected

| Myth | What really happens |
|---|---|
| “The AI paints the picture.” | At every step it predicts the whole noise (a whole blurry picture); the sampler moves a little towards it. There are no brush strokes. |
| “It removes the noise that doesn't match the prompt.” | It estimates *all* of the noise. The prompt changes the estimate; guidance pushes away from the no-prompt estimate. |
| “Noise is added to the colours and kept inside 0..255.” | Pixels are mapped to [−1, 1], shrunk by √ᾱ, then unbounded Gaussian noise is added. Values leave [−1, 1]; the screen clips them. Example: ᾱ = 0.5, x<sub>0</sub> = (−1, −0.059, 1), ε = (0.5, −1.0, 0.3) gives x<sub>t</sub> = (−0.354, −0.749, 0.919). |
| “It starts from 1000×1000 pixels of noise.” | Stable Diffusion works in a compressed *latent*: 64×64×4 numbers (16,384), 48× fewer than a 512×512 RGB picture. A decoder turns the latent into pixels at the end. |
| “You must run all 1000 steps.” | Training uses 1000 noise levels; good samplers need only 10–50 of them. |
| “The last training step is pure noise.” | Not for Stable Diffusion's schedule: √ᾱ<sub>T</sub> = 0.068 of the picture is left. |

### About the models here
The default model is an **exact denoiser over 1,361 emoji** (64×64 pixels). It needs no training: it is
the mathematically best possible denoiser for that collection, so it always gives back one of its emoji.
That is *memorization*; real models like Stable Diffusion learn general patterns and make new pictures.
The **Memorize vs generalize** tab puts it next to a small trained network that has to generalize.
"""

CLASSROOM_HELP = "Classroom mode: big pictures and big text for the back of the room."
