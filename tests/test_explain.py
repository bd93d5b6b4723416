"""The words students read must state the facts of shared/reference/diffusion-science.md."""

from diffusion_viz.ui import explain

ALL = " ".join(v for k, v in vars(explain).items() if k.isupper() and isinstance(v, str))


def test_required_facts_are_stated():
    for fact in ("[−1, 1]", "64×64×4", "0.068", "all* of the noise", "(−0.354, −0.749, 0.919)", "10–50"):
        assert fact in ALL, fact


def test_the_four_myths_of_the_issue_are_corrected():
    table = explain.HOW_IT_WORKS.split("### Myths, corrected")[1]
    for myth in ("paints", "doesn't match the prompt", "0..255", "1000×1000"):
        assert myth in table, myth


def test_schedule_size_claim_has_the_right_direction():
    # Bigger images need noisier schedules (Chen 2023; Hoogeboom 2023), not smaller ones.
    assert "bigger pictures\nneed noisier schedules" in explain.HOW_IT_WORKS
    assert "Small pictures need noisier" not in ALL
