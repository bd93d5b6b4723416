"""The whole app: six tabs and a classroom-mode switch. ``build_app()`` returns the gr.Blocks.

Public API (stable names, documented in docs/API.md): ``/generate``, ``/forward_noise``,
``/forward_plots``, ``/compare``, ``/memorize``, the experiments ``/round_trip``, ``/when_decided``,
``/seed_grid``, and the files ``/downloads``, ``/lesson_file``, ``/worksheet``. Example::

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    player, image, summary, *_ = client.predict("cat", 50, 0, 1.0, "ddim", "cosine", "emoji-exact",
                                                api_name="/generate")
"""

from __future__ import annotations

from urllib.parse import parse_qs

import gradio as gr

from ..glossary import glossary_markdown
from ..limits import LIMITS
from ..models.registry import DEFAULT_MODEL, get_model
from . import compare_tab, denoise_tab, experiments_tab, explain, forward_tab, logic, memorize_tab, theme, views
from .serving import WORK, Serving, bound_process_memory, env_int, start_janitor

TITLE = "diffusion-viz: how a diffusion model makes a picture"


def warm_up(model_name: str = DEFAULT_MODEL) -> None:
    """Load the default model and its text encoder before the first click (~8 s once per process), and
    make one whole run the way Generate does (frames, candidates, summary): the first click of a class
    otherwise paid ~0.9 s of first-call costs. Its result is not kept (nobody asked for it)."""
    from .cache import RESULTS
    from .denoise_tab import run_outputs

    model = get_model(model_name)
    if hasattr(model, "top_matches"):
        model.top_matches(logic.DEFAULTS["prompt"])
    d = logic.DEFAULTS
    for _ in run_outputs(d["prompt"], d["steps"], d["seed"] + 1, d["guidance"], d["scheduler"], d["schedule"],
                         model_name, first_send=0.0):
        pass
    RESULTS.clear()


# the expensive events: one pool
SAMPLING_HANDLERS = ("generate", "generate_page", "make_downloads", "compare_ui", "compare", "sd_guidance", "memorize_ui", "memorize_api")


def configure_queue(demo: gr.Blocks, serving: Serving | None = None) -> gr.Blocks:
    """Put every sampling event (Generate, quick prompts, dice, next seed, Compare, Memorize) in one
    pool of ``serving.sampling`` workers, so thirty clicks queue up instead of oversubscribing the CPU;
    cheap events get their own, larger pool. Waiting users see their queue position (gradio's status
    tracker shows "queue: 3/12" on the output; gradio_client's Job.status() has rank and queue_size).
    """
    serving = serving or Serving.from_env()
    WORK.resize(serving.sampling)  # the sampling actually running, whatever gradio's slots say
    start_janitor()  # uploads and made files on disk stay under DIFFUSION_VIZ_MAX_UPLOADS_MB
    for fn in demo.fns.values():
        name = getattr(getattr(fn, "fn", None), "__name__", "")
        if name in SAMPLING_HANDLERS:
            fn.concurrency_id, fn.concurrency_limit = "sampling", serving.sampling
    return demo.queue(default_concurrency_limit=serving.light, max_size=serving.queue_size)


def build_app() -> gr.Blocks:
    # delete_cache: every 10 min, remove uploads and outputs older than 30 min from gradio's temp cache
    # (and all of them when the server stops), so a classroom's photos do not pile up on disk.
    _check_lesson()
    bound_process_memory()  # before the Blocks: its queue reads gradio's settings when it is made
    with gr.Blocks(title=TITLE, delete_cache=_delete_cache()) as demo:
        with gr.Row(equal_height=True, elem_id="dv-header"):
            gr.Markdown(f"# {TITLE}", elem_classes=["dv-title"])
            lesson_btn = gr.Button("Lesson", size="sm", scale=0, min_width=100, elem_id="dv-lesson-btn")
            copy_btn = gr.Button("Copy link", size="sm", scale=0, min_width=120, elem_id="dv-copy-link")
            classroom = gr.Checkbox(False, label="Classroom mode (big)", elem_id="dv-classroom",
                                    scale=0, min_width=220)
        link_box = gr.Textbox(label="Link to this view (copied)", visible=False, interactive=False,
                              elem_id="dv-link", buttons=["copy"])
        link_note = gr.Markdown(elem_id="dv-link-note", elem_classes=["dv-help"])
        with gr.Column(visible=False, elem_id="dv-lesson") as lesson_panel:
            lesson_md = gr.Markdown(elem_id="dv-lesson-text")
            with gr.Row():
                back = gr.Button("Back", size="sm", elem_id="dv-lesson-back", min_width=100)
                nxt = gr.Button("Next", size="sm", variant="primary", elem_id="dv-lesson-next", min_width=100)
                close = gr.Button("Close the lesson", size="sm", elem_id="dv-lesson-close", min_width=160)
            with gr.Accordion("The answer (for the teacher)", open=False):
                answer_md = gr.Markdown(elem_id="dv-lesson-answer")
        lesson_i = gr.State(0)
        tab_now = gr.State("denoise")
        tab_box = gr.Textbox(visible="hidden", elem_id="dv-view-tab")
        run_box = gr.Textbox(visible="hidden", elem_id="dv-view-run")
        query_box = gr.Textbox(visible="hidden", elem_id="dv-view-query")
        # "wrap": on a 1024 px projector in classroom mode the six tabs take two rows rather than hiding
        # the last ones behind a "..." menu nobody at the back of the room can guess
        with gr.Tabs(elem_id="dv-tabs", overflow_behavior="wrap") as tabs:
            with gr.Tab("1 · Denoise", id="denoise", elem_id="dv-tab-denoise") as t1:
                den = denoise_tab.build()
            with gr.Tab("2 · Forward noising", id="forward", elem_id="dv-tab-forward") as t2:
                fwd = forward_tab.build()
            with gr.Tab("3 · Compare", id="compare", elem_id="dv-tab-compare") as t3:
                with gr.Column(elem_id="dv-cmp-main"):  # classroom mode reorders its children
                    cmp = compare_tab.build()
            with gr.Tab("4 · Memorize vs generalize", id="memorize", elem_id="dv-tab-memorize") as t4:
                mvg = memorize_tab.build()
            with gr.Tab("5 · Experiments", id="experiments", elem_id="dv-tab-experiments") as t6:
                exp = experiments_tab.build()
            with gr.Tab("6 · How it works", id="how", elem_id="dv-tab-how") as t5:
                gr.Markdown(explain.HOW_IT_WORKS, elem_classes=["dv-help"])
                gr.Markdown(glossary_markdown(), elem_classes=["dv-help"],
                            elem_id="dv-glossary")
        for tab, tab_id in ((t1, "denoise"), (t2, "forward"), (t3, "compare"), (t4, "memorize"), (t6, "experiments"),
                            (t5, "how")):
            tab.select(lambda tab_id=tab_id: tab_id, None, tab_now, api_visibility="private", queue=False)
        classroom.change(None, classroom, None, js=theme.TOGGLE_CLASSROOM_JS)
        demo.load(None, None, classroom, js=theme.CLASSROOM_FROM_URL_JS, api_visibility="private", queue=False)
        f_noise, f_in, f_out, f_plots, p_in, p_out = fwd["load"]
        demo.load(f_noise, f_in, f_out, api_visibility="private").then(
            f_plots, p_in, p_out, api_visibility="private")

        # A link restores its view (and runs it); the lesson walks through its stops.
        exp_now = gr.State("round-trip")
        for exp_id, exp_tab in exp["tab_events"].items():
            exp_tab.select(lambda exp_id=exp_id: exp_id, None, exp_now, api_visibility="private", queue=False)
        targets = views.Targets(tabs, den, fwd, cmp, mvg, link_note, tab_box, run_box, exp)
        lesson_outputs = [lesson_panel, lesson_md, answer_md, lesson_i, *targets.outputs]
        demo.load(open_from_url, query_box, [*lesson_outputs, tab_now], js="() => [window.location.search]",
                  api_visibility="private").then(None, [tab_box, run_box], [tab_box, run_box], js=views.RUN_VIEW_JS)
        for button, step in ((lesson_btn, 0), (nxt, 1), (back, -1)):
            button.click(lambda i, step=step: lesson_step(i, step), lesson_i, [*lesson_outputs, tab_now],
                         api_visibility="private").then(None, [tab_box, run_box], [tab_box, run_box],
                                                        js=views.RUN_VIEW_JS)
        close.click(lambda: gr.update(visible=False), None, lesson_panel, api_visibility="private", queue=False)
        copy_inputs = [tab_now, den["prompt"], den["model"], den["sampler"], den["schedule"], den["steps"],
                       den["seed"], den["guidance"], fwd["t"], fwd["schedules"], fwd["noise_seed"], cmp["prompt"],
                       cmp["seed"], cmp["model"], mvg["prompt"], mvg["seed"], mvg["steps"], mvg["guidance"],
                       exp_now, *[exp[e][c] for e in views.EXPERIMENTS for c in views.experiment_controls(e)],
                       *cmp["columns"]]
        copy_btn.click(current_link, copy_inputs, query_box, api_visibility="private", queue=False).then(
            None, query_box, [query_box, link_box], js=views.COPY_LINK_JS).then(
            lambda url: gr.update(visible=bool(url), value=url), link_box, link_box, api_visibility="private",
            queue=False)
    return demo


def _check_lesson() -> None:
    """Read the lesson file at start: a mistake is named (file, line) in the server's log at once, and on
    the page when someone opens the lesson; the app serves either way."""
    import sys

    from ..lessons import LessonError
    from .lesson_mode import stops

    try:
        stops()
    except LessonError as e:
        print(f"diffusion-viz: the guided lesson is off until this is fixed: {e}", file=sys.stderr)


def open_from_url(search: str):
    """The page was opened: ``?lesson=1`` starts the guided lesson, any other link restores its view."""
    params = parse_qs(str(search or "").lstrip("?"))
    if params.get("lesson", [""])[-1] in ("1", "true"):
        try:
            start = int(params.get("stop", ["1"])[-1]) - 1
        except ValueError:
            start = 0
        return lesson_step(start, 0, opening=True)
    tab, settings, notes = views.parse_link(search) if search and "tab=" in search else ("denoise", {}, [])
    if not search or "tab=" not in search:  # an ordinary visit: leave the page as it is
        return (gr.skip(),) * 4 + (gr.skip(),) * (len(views.view_updates("how", {})) - 2) + ("", "") + (gr.skip(),)
    updates = views.view_updates(tab, settings, note=views.notes_markdown(notes))
    return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), *updates, tab)


def lesson_step(index, step: int, opening: bool = False):
    """Show the guided lesson's stop ``index + step`` (the Lesson button starts at stop 1). A lesson file
    with a mistake shows the mistake (file and line) in the lesson panel; the rest of the page works."""
    from ..lessons import LessonError
    from .lesson_mode import show_stop, stops

    try:
        count = len(stops())
    except LessonError as e:
        text = ("**The lesson file has a mistake, so the lesson cannot start.** " + logic.escape_text(str(e)) +
                " Fix that line and restart the app; everything else on this page works.")
        return (gr.update(visible=True), text, "", 0, *(gr.skip(),) * (len(views.view_updates("how", {})) - 2),
                "", "", gr.skip())
    i = 0 if step == 0 and not opening else int(index or 0) + step
    i = min(max(i, 0), count - 1)
    text, answer, i, *updates = show_stop(i)
    return (gr.update(visible=True), text, answer, i, *updates, updates[-2])


def current_link(tab, d_prompt, d_model, d_sampler, d_schedule, d_steps, d_seed, d_guidance, f_t, f_schedules,
                 f_noise_seed, c_prompt, c_seed, c_model, m_prompt, m_seed, m_steps, m_guidance, exp_now, *rest):
    """The query string of the view on screen (the page adds its address, the slider's step, the mode).
    ``rest``: every experiment's controls (views.EXPERIMENT_KEYS order), then Compare's column controls."""
    exp_values = {}
    for name in views.EXPERIMENTS:
        keys = views.EXPERIMENT_KEYS[name]
        exp_values[name], rest = dict(zip(keys, rest[:len(keys)])), rest[len(keys):]
    flat = rest
    if tab == "experiments":
        exp = exp_now if exp_now in views.EXPERIMENTS else "round-trip"
        settings = {k: v for k, v in exp_values[exp].items() if v is not None and (v or k != "emoji")}
        if "mode" in settings:
            settings["mode"] = "reseed" if str(settings["mode"]).startswith("new") else "switch"
        if "levels" in settings:
            settings["levels"] = sorted(int(v) for v in settings["levels"])
        return views.link_query(tab, {"exp": exp, **settings})
    if tab == "denoise":
        settings = dict(prompt=d_prompt, model=d_model, sampler=d_sampler, schedule=d_schedule, steps=d_steps,
                        seed=d_seed, guidance=d_guidance)
    elif tab == "forward":
        settings = dict(t=f_t, schedules=list(f_schedules or []), noise_seed=f_noise_seed)
    elif tab == "compare":
        columns = compare_tab.columns_from_flat(flat)
        settings = dict(prompt=c_prompt, seed=c_seed, model=c_model,
                        **{key: [c[name] for c in columns] for key, name in
                           (("sampler", "scheduler"), ("schedule", "schedule"), ("steps", "steps"),
                            ("guidance", "guidance"))})
    elif tab == "memorize":
        settings = dict(prompt=m_prompt, seed=m_seed, steps=m_steps, guidance=m_guidance)
    else:
        settings = {}
    return views.link_query(tab, settings)


def _delete_cache() -> tuple[int, int]:
    age = env_int("DIFFUSION_VIZ_CACHE_AGE_S", 1800)
    return (max(60, age // 3), age)


def launch_kwargs() -> dict:
    """Everything launch() needs besides host and port: theme, CSS, JS, file access.

    Files: gradio serves its own temp cache (uploads and outputs of this app) plus ``allowed_paths``,
    which is only the example photos. One upload is capped at DIFFUSION_VIZ_MAX_UPLOAD_MB (limits.py).
    """
    # show_error: gradio's own input checks (a number sent as text...) reach the user as their message
    # instead of "the app raised an exception"; handlers' own errors are already friendly gr.Errors.
    # run_history off: gradio would copy every streamed update (megabytes of frames) into the browser's
    # localStorage, JSON-encoding the whole history again on each message. That stalled the page for
    # 0.3-0.7 s per run and grew with every run; on a shared classroom computer it would also keep
    # one pupil's runs for the next.
    return dict(css=theme.CSS, js=theme.HEAD_JS, theme=gr.themes.Soft(), show_error=True, run_history=False,
                allowed_paths=[str(logic.EXAMPLES_DIR)],
                max_file_size=f"{LIMITS.upload_mb}mb")


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_server(port: int | None = None, host: str = "127.0.0.1", warm: bool = True, processes: int = 0):
    """Launch in this process without blocking (tests, benchmark, screenshots). Returns (demo, url).
    ``processes``: start a sampling pool of that many workers (ui/sampling_pool.py; the caller stops it)."""
    if processes:  # (with this process's torch threads: the same floats as a run made here)
        import torch

        from . import sampling_pool

        sampling_pool.start(processes, torch.get_num_threads(), warm_model=DEFAULT_MODEL if warm else None)
    if warm:
        warm_up()
    demo = configure_queue(build_app())
    port = port or free_port(host)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    from .run_route import install

    install(demo.app)
    return demo, f"http://{host}:{port}/"
