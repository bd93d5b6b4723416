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
    "model guesses the *whole* clean picture at once (early guesses are blurry averages). "
    "**Right: the noise it thinks is in there** (predicted ε), drawn at full strength at every step: "
    "x<sub>t</sub> holds only √(1−ᾱ) of it (the “noise left” number), almost none at the last steps. "
    "The sampler then moves x<sub>t</sub> a small part of the way towards its guess, and asks again.\n\n"
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
    "**Noise schedule**: how quickly the forward process destroys the picture as t goes from 0 to 999. "
    "A lesson hides in Stable Diffusion's *scaled_linear* schedule: at its last step a noised picture still "
    "keeps √ᾱ = 0.068 of its amplitude (ᾱ = 0.47 % of its power). That sounds like nothing, but evidence adds "
    "up over the 12,288 numbers of a 64×64 emoji like a square root: 0.068 · √(12,288 · 0.77) ≈ 6.6 noise "
    "standard deviations. Sampling starts from pure static, which holds no emoji at all. The exact "
    "denoiser (it has no training) assumes a noised emoji is in there and reads chance patterns and "
    "faintness as evidence: it favours low-contrast emoji (on one seed +4.3 nats for dog over cat), "
    "and that can outvote the prompt: try “cat” with scaled_linear (seed 0 ends on a snake). "
    "*cosine* and *linear* end at (almost) pure noise and follow the prompt. A trained model such as "
    "Stable Diffusion meets the same gap between the noise it learned on and the static it starts from; "
    "it is why SD struggles with very dark or very bright pictures (Lin et al. 2024)."
)

FORWARD_INTRO = (
    "### Forward noising: how training makes its examples\n"
    "Training takes a real picture and jumps straight to any noise level t in one formula:\n\n"
    "**x<sub>t</sub> = √ᾱ<sub>t</sub> · x<sub>0</sub> + √(1 − ᾱ<sub>t</sub>) · ε**\n\n"
    "ᾱ (alpha-bar) is the share of the picture's *power* left (√ᾱ of its amplitude). A network is trained "
    "to look at x<sub>t</sub> and predict the noise ε, or an equivalent target such as v (both emoji models "
    "here predict v). All schedules below use the **same** noise ε, so the only difference is the schedule. "
    "Even t = 0 is one noising step, not the clean photo."
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
    "every step its guess is a weighted average of exactly those pictures, and with enough steps one of "
    "them wins. It can only give back pictures it was shown (or, with too few steps, a blend of them). "
    "That is **memorization**.\n\n"
    "**Why the network makes something new.** It learned patterns (colours, round shapes, eyes) from "
    "briefly training on shifted and mirrored copies of the emoji, and it mixes them: its pictures are new, "
    "often blurry mixes. That is **generalization**. Size alone would not stop it from copying: its 1.64 "
    "million weights take 26 Mbit, and all 1,361 training pictures at 32 × 32 compress to about 12 Mbit. "
    "Whether much longer training would make it memorize is an experiment, not a given.\n\n"
    "**Honest note:** this network is under-trained (it learned for about three hours, on an ordinary "
    "processor): about 6 in 10 of its pictures look like the prompt (30 of 50 test prompts), the rest only "
    "have its colours and rough shape.\n\n"
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
picture (but already one noising step), at t = 999 it is (almost) only noise. A network is shown millions of
these and learns one job: *look at a noisy picture, predict the noise that was added*, or an equivalent
target: the clean picture, or v, a mix of the two (both emoji models here predict v).

**Reverse (making a picture): repair step by step.** Start from pure random static. Ask the network
“what noise is in here?”. Its answer gives a guess of the *whole* clean picture. Move a little way
towards that guess, which leaves a slightly less noisy picture, and ask again. Fifty small steps later
the static has become a picture.

**What the model predicts.** Always *all* of the noise (or the equivalent v), at every step, never “just
the bits that don't match”. From that, the predicted clean picture is
x̂<sub>0</sub> = (x<sub>t</sub> − √(1 − ᾱ) ε̂) / √ᾱ: the middle panel of the Denoise tab.

**What the prompt does.** The prompt is turned into numbers (a text encoder) and given to the network
with every step. It changes the noise prediction, so it steers which picture the steps lead to. Here
you can see it: the Denoise tab shows which emoji a prompt points to and how strongly.

**Guidance.** Predict twice, with and without the prompt, and push past the prompt's answer. Stronger
guidance = more “on prompt”, less variety.

**Why schedules matter.** A schedule decides how much signal is left at each step. The fair way to
compare schedules is the log signal-to-noise ratio (log SNR). Picture size matters: in a bigger
picture neighbouring pixels repeat each other, so the same noise level hides less, and bigger pictures
need noisier schedules (Chen 2023; Hoogeboom et al. 2023). The other way round, the linear schedule
wipes out small pictures too early: a third of its steps keep less than 1 % of the signal's power
(Nichol & Dhariwal 2021). And Stable Diffusion's schedule never reaches pure noise: its last step keeps
√ᾱ = 0.068 of the amplitude (0.47 % of the power), which over a whole 64×64 picture is still about 6.6
noise standard deviations of evidence. Sampling starts from pure static all the same, something a
trained model never saw at that step (Lin et al. 2024).

### Myths, corrected

| Myth | What really happens |
|---|---|
| “The AI paints the picture.” | At every step it predicts the whole noise (a whole blurry picture); the sampler moves a little towards it. There are no brush strokes. |
| “It removes the noise that doesn't match the prompt.” | It estimates *all* of the noise. The prompt changes the estimate; guidance pushes away from the no-prompt estimate. |
| “Noise is added to the colours and kept inside 0..255.” | Pixels are mapped to [−1, 1], shrunk by √ᾱ, then unbounded Gaussian noise is added. Values leave [−1, 1]; the screen clips them. Example: ᾱ = 0.5, pixel (0, 120, 255) → x<sub>0</sub> = (−1, −0.059, 1); ε = (−0.8, 1.6, 0.9) gives x<sub>t</sub> = (−1.273, 1.090, 1.344): two values leave [−1, 1], and the screen shows the clipped pixel (0, 255, 255). |
| “It starts from 1000×1000 pixels of noise.” | Stable Diffusion works in a compressed *latent*: 64×64×4 numbers (16,384), 48× fewer than a 512×512 RGB picture. A decoder turns the latent into pixels at the end. |
| “You must run all 1000 steps.” | Training uses 1000 noise levels; good samplers need only 10–50 of them. |
| “The last training step is pure noise.” | Not for Stable Diffusion's schedule: √ᾱ<sub>T</sub> = 0.068 of the amplitude is left (0.47 % of the power); over a whole 64×64 picture that is about 6.6 noise standard deviations. |
| “The first step (t = 0) is the clean picture.” | It is already one noising step: ᾱ<sub>0</sub> = 0.9999 (linear) … 0.957 (laplace). |

### About the models here
The default model is an **exact denoiser over 1,361 emoji** (64×64 pixels). It needs no training: it is
the mathematically best possible denoiser for that collection. The *denoiser* is exact; a *sampler* with a
finite number of steps is not, so a run ends on one of its emoji (or, with too few steps, a blend of them).
That is *memorization*; real models like Stable Diffusion learn general patterns and make new pictures.
The **Memorize vs generalize** tab puts it next to a small trained network that has to generalize.
"""

CLASSROOM_HELP = "Classroom mode: big pictures and big text for the back of the room."

EXPERIMENTS_INTRO = (
    "### Experiments: ask the process a question\n"
    "Each experiment runs several columns under one slider. Which training emoji the exact model's guess "
    "is an average of, step by step, is shown under the **Denoise** tab's player."
)

ROUND_TRIP = (
    "**The round trip (SDEdit).** Your photo is noised in one jump to step t with the Forward tab's formula, "
    "x<sub>t</sub> = √ᾱ·x<sub>0</sub> + √(1−ᾱ)·ε (its noise seed is the seed here), and the model denoises "
    "from there: a start at step k of N skips the first k steps. Each column says where it starts: t, ᾱ "
    "(the share of the photo's *power* left; its amplitude is √ᾱ) and how many steps it skips. With emoji-unet, "
    "little noise gives your photo back and more noise drifts further from it (the example photo, seed 0: "
    "RMS distance 0.035 from t = 19, 0.17 from t = 199, 0.37 from t = 599). The exact emoji model can only "
    "end on one of its training emoji: even from t = 19 a photo becomes the emoji it is closest to, and a "
    "training emoji comes back. From t = 999 on the cosine schedule "
    "(ᾱ ≈ 2.4·10⁻⁹) nothing of the photo is left; on scaled_linear 0.47 % of its power is still there. "
    "The web UIs' \"denoising strength\" is the share of the steps that are run, 1 − k/N."
)

WHEN_DECIDED = (
    "**When is the picture decided?** Same seed, same static. Each column follows prompt A for the first "
    "k steps and prompt B after (0 %: B's own run; 100 %: A's own run). If a column still ends on A's "
    "picture after switching at 25 %, the picture was decided in the first quarter. The exact emoji model "
    "allows only the 32 emoji that best match a prompt, so a late switch ends on whichever of B's is "
    "closest to the picture so far. **New noise** keeps prompt A and, from step k on, draws the sampler's "
    "fresh noise from another seed (only DDPM and Euler ancestral add noise after the start)."
)

SEED_GRID = (
    "**One prompt, many seeds.** The seed chooses the starting static (and, for DDPM and Euler ancestral, "
    "the noise added at every step); the prompt only says what the model prefers. For the exact emoji model "
    "that preference is a prior over the 32 emoji that best match the prompt, compared below with how often "
    "its favourite won. The prior is the chance before any noise is seen; the results follow it only "
    "approximately (the sampler, its steps and the schedule move them)."
)

NO_CANDIDATES = (
    " Only the exact emoji model's guess is a weighted average of training emoji it can name (shown under "
    "the player for that model); a trained network's guess is not."
)
