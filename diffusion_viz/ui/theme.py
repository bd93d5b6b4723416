"""Look and feel: readable on a 1280x800 projector; classroom mode makes everything bigger.

Images are sent at their native size (64x64) and upscaled by the browser with nearest-neighbour
(``image-rendering: pixelated``): crisp squares, no blur, no server work.
"""

CSS = """
:root { --dv-img: 250px; --dv-img-multi: 180px; }
.gradio-container { max-width: 1400px !important; }
.dv-title h1 { margin: 0 0 2px 0; font-size: 1.8em; }
.dv-help { font-size: 0.95em; line-height: 1.45; }
.dv-help p { margin: 0.3em 0; }

/* the player */
.dv-player { font-size: 15px; }
.dv-empty { padding: 48px 16px; text-align: center; color: #4b5563;
            border: 2px dashed var(--border-color-primary); border-radius: 12px; font-size: 1.15em; }
.dv-cols { display: flex; gap: 14px; flex-wrap: wrap; justify-content: center; }
.dv-col { display: flex; flex-direction: column; align-items: center; }
.dv-col-title { font-weight: 700; margin-bottom: 4px; text-align: center; font-size: 0.95em; }
.dv-panels { display: flex; gap: 12px; flex-wrap: wrap; justify-content: center; }
.dv-multi .dv-panels { flex-direction: column; gap: 6px; }
.dv-panel { margin: 0; display: flex; flex-direction: column; align-items: center; }
.dv-panel figcaption { max-width: var(--dv-img); text-align: center; font-size: 0.95em; margin-top: 4px; }
.dv-short { display: none; }
body.dv-classroom .dv-short { display: inline !important; }
body.dv-classroom .dv-long { display: none !important; }
.dv-multi .dv-panel figcaption { max-width: var(--dv-img-multi); font-size: 0.85em; }
.dv-img { width: var(--dv-img); height: var(--dv-img); image-rendering: pixelated;
          border-radius: 6px; background: #222; box-shadow: 0 1px 4px rgba(0,0,0,.25); }
.dv-multi .dv-img { width: var(--dv-img-multi); height: var(--dv-img-multi); }
.dv-numbers { display: flex; gap: 14px; flex-wrap: wrap; justify-content: center; margin: 6px 0;
              font-variant-numeric: tabular-nums; }
.dv-cands { margin: 8px auto 0; max-width: 900px; text-align: center; }
.dv-cands-head { margin-bottom: 6px; }
.dv-cand-row { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; }
.dv-cand { margin: 0; display: flex; flex-direction: column; align-items: center; width: 72px; }
.dv-cand img { width: 48px; height: 48px; image-rendering: pixelated; border: 1px solid var(--border-color-primary); }
.dv-cand figcaption { font-size: 0.85em; line-height: 1.2; overflow-wrap: anywhere; }
.dv-cand-curve { display: block; margin: 6px auto 0; }
.dv-waiting .dv-panels { opacity: 0.35; }
.dv-multi .dv-col-title { max-width: calc(var(--dv-img-multi) + 24px); }
#dv-rt-player, #dv-wd-player, #dv-sg-player { --dv-img-multi: 150px; }
.dv-multi .dv-numbers { gap: 6px 10px; font-size: 0.85em; max-width: calc(var(--dv-img-multi) + 20px); }
.dv-controls { display: flex; align-items: center; gap: 10px; margin-top: 8px; flex-wrap: wrap; }
.dv-slider { flex: 1; min-width: 200px; height: 28px; accent-color: var(--color-accent); }
.dv-btn { font-size: 1.05em; padding: 6px 14px; border-radius: 8px; cursor: pointer;
          border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill); }
.dv-play { min-width: 96px; font-weight: 700; }
.dv-btn { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.dv-btn svg { width: 0.85em; height: 0.85em; fill: currentColor; flex: none; }
.dv-btn:focus-visible, .dv-slider:focus-visible, .dv-speed:focus-visible { outline: 3px solid #1d4ed8;
  outline-offset: 2px; }
.dv-step { min-width: 120px; font-variant-numeric: tabular-nums; font-weight: 600; }
.dv-speed { padding: 4px 6px; min-width: 110px; font-size: 1em; }

/* every other picture of model-sized images: crisp squares */
.dv-pixelated img { image-rendering: pixelated; }
.dv-noised img { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
.dv-final img { width: 128px !important; height: 128px !important; object-fit: contain; }

/* memorize vs generalize: per model, its picture next to the nearest training emoji */
:root { --dv-mvg: min(210px, 17vw); }
.dv-mvg { display: flex; gap: 20px; flex-wrap: wrap; justify-content: center; font-size: 15px; }
.dv-mvg-card { display: flex; flex-direction: column; align-items: center; padding: 10px 14px 12px;
               border: 2px solid var(--border-color-primary); border-radius: 12px; }
.dv-mvg-title { font-weight: 700; font-size: 1.25em; }
.dv-mvg-sub, .dv-mvg-pair figcaption, .dv-mvg-rms { text-align: center; }
.dv-mvg-sub { color: var(--body-text-color-subdued); margin-bottom: 8px; max-width: calc(2 * var(--dv-mvg) + 12px); }
.dv-mvg-pair { display: flex; gap: 12px; }
.dv-mvg-pair figure { margin: 0; display: flex; flex-direction: column; align-items: center; }
.dv-mvg-pair figcaption { max-width: var(--dv-mvg); margin-top: 4px; }
.dv-mvg-img { width: var(--dv-mvg); height: var(--dv-mvg); image-rendering: pixelated; background: #fff;
              border: 1px solid var(--border-color-primary); border-radius: 6px; }
.dv-mvg-rms { margin-top: 6px; font-variant-numeric: tabular-nums; }
.dv-mvg-verdict { margin-top: 6px; padding: 4px 12px; border-radius: 8px; font-weight: 700; font-size: 1.05em;
                  text-align: center; max-width: calc(2 * var(--dv-mvg) + 12px); }
.dv-mvg-copy .dv-mvg-verdict { background: #fff1c2; color: #5c4300; }
.dv-mvg-new .dv-mvg-verdict { background: #d6f5e0; color: #0f4a26; }

/* classroom mode: readable from the back of the room, and the button and the pictures on one screen
   (1280x800 and 1024x768 projectors): pictures as big as the height left over allows */
body.dv-classroom { --dv-img: min(380px, 30vw, calc(100vh - 560px));
                    --dv-img-multi: min(200px, 10vw, calc(100vh - 560px));
                    --dv-mvg: min(330px, 17vw, calc(100vh - 630px)); }
body.dv-classroom .gradio-container p, body.dv-classroom .gradio-container span,
body.dv-classroom .gradio-container label, body.dv-classroom .gradio-container button,
body.dv-classroom .gradio-container input, body.dv-classroom .gradio-container textarea,
body.dv-classroom .gradio-container select, body.dv-classroom .gradio-container td,
body.dv-classroom .gradio-container th, body.dv-classroom .gradio-container li,
body.dv-classroom .gradio-container figcaption, body.dv-classroom .gradio-container small,
body.dv-classroom .gradio-container a, body.dv-classroom .gradio-container summary,
body.dv-classroom .dv-numbers, body.dv-classroom .dv-step, body.dv-classroom .dv-col-title,
body.dv-classroom .dv-mvg *, body.dv-classroom #dv-arithmetic code, body.dv-classroom .dv-multi .dv-numbers,
body.dv-classroom .dv-multi .dv-panel figcaption { font-size: max(20px, 1em) !important; }
body.dv-classroom .gradio-container h2, body.dv-classroom .gradio-container h3,
body.dv-classroom .gradio-container h4 { font-size: max(24px, 1.2em) !important; }
body.dv-classroom .info-text { display: none !important; }  /* the grey descriptions under labels */
body.dv-classroom button[role="tab"], body.dv-classroom button[role="tab"] * { padding-left: 6px !important;
  padding-right: 6px !important; font-size: 20px !important; }
/* classroom mode: tighter gaps between blocks (gradio's 16 px), so a second row of tabs still leaves the
   pictures and their slider on a 1024x768 projector's screen */
body.dv-classroom, body.dv-classroom .gradio-container { --layout-gap: 10px !important; }
/* at 1024 px the six tabs wrap onto two rows (gr.Tabs overflow_behavior="wrap"): keep the rows low */
body.dv-classroom button[role="tab"] { padding-top: 2px !important; padding-bottom: 2px !important;
  line-height: 1.25 !important; min-height: 0 !important; height: auto !important; }
body.dv-classroom .dv-mvg-rms, body.dv-classroom .dv-mvg-sub { max-width: calc(2 * var(--dv-mvg) + 12px) !important; }
/* Compare: each column's two pictures side by side, so four columns fit one screen */
/* (gradio repeats every rule above with a stronger prefix: overrides here need !important) */
body.dv-classroom .dv-multi .dv-panels { flex-direction: row !important; flex-wrap: nowrap !important; }
body.dv-classroom .dv-multi .dv-col-title { max-width: calc(2 * var(--dv-img-multi) + 12px) !important;
                                            line-height: 1.15 !important; }
body.dv-classroom .dv-multi .dv-panel figcaption { max-width: var(--dv-img-multi) !important; line-height: 1.15 !important; }
body.dv-classroom .dv-multi .dv-numbers { max-width: calc(2 * var(--dv-img-multi) + 12px) !important; }
body.dv-classroom .dv-title h1 { font-size: 1.25em !important; white-space: nowrap; overflow: hidden;
                                 text-overflow: ellipsis; }
body.dv-classroom .dv-mvg-sub { display: none !important; }
body.dv-classroom .dv-cands-head, body.dv-classroom .dv-cand figcaption { font-size: max(20px, 1em) !important; }
body.dv-classroom .dv-cand { width: 110px !important; }
body.dv-classroom .dv-numbers { gap: 2px 14px !important; margin: 2px 0 !important; }
body.dv-classroom .dv-panel figcaption { max-width: calc(var(--dv-img) + 40px) !important; line-height: 1.2 !important; }
body.dv-classroom .dv-mvg { font-size: 20px !important; }
body.dv-classroom .gradio-container { font-size: 20px; max-width: 100% !important; }
body.dv-classroom .dv-player { font-size: 22px !important; }
body.dv-classroom .dv-speed { min-width: 150px !important; }
body.dv-classroom .dv-help { font-size: 1.2em !important; }
body.dv-classroom .prose, body.dv-classroom label span, body.dv-classroom button { font-size: 1.15em !important; }
body.dv-classroom .dv-advanced { display: none !important; }
/* pictures first, full width; the controls move below them */
body.dv-classroom #dv-denoise-row, body.dv-classroom #dv-forward-row { flex-direction: column !important; }
body.dv-classroom #dv-denoise-main, body.dv-classroom #dv-forward-main { order: -1 !important; }
body.dv-classroom #dv-forward-controls .dv-help:first-child { display: none !important; }
body.dv-classroom .dv-noised { height: calc(100vh - 420px) !important; min-height: 220px !important; }
/* memorize: the controls (with Run) stay on top, the cards right below; the teacher says the intro */
body.dv-classroom #dv-mvg-intro { display: none !important; }
/* compare: prompt and button, then the pictures, then the column settings */
body.dv-classroom .dv-exp-help { display: none !important; }
body.dv-classroom .dv-exp-controls div { font-size: max(20px, 1em) !important; }
body.dv-classroom .dv-exp-top { order: -4 !important; }
body.dv-classroom .dv-exp-status { order: -3 !important; }
body.dv-classroom .dv-player-block:is(#dv-rt-player, #dv-wd-player, #dv-sg-player) { order: -2 !important; }
/* one picture per column on a projector (what the model sees, x_t), as big as the screen allows */
body.dv-classroom .dv-exp-main .dv-panel:has(canvas[data-panel="x0"]) { display: none !important; }
body.dv-classroom #dv-rt-player, body.dv-classroom #dv-wd-player {
  --dv-img-multi: min(190px, 14vw, calc(100vh - 590px)) !important; }
body.dv-classroom #dv-sg-player { --dv-img-multi: min(180px, 9vw, calc((100vh - 600px))) !important; }
body.dv-classroom .dv-exp-main .dv-multi .dv-panels { flex-direction: column !important; }
body.dv-classroom .dv-exp-main .dv-cols { gap: 8px !important; flex-wrap: nowrap !important; }
body.dv-classroom .dv-exp-main .dv-panel figcaption,
body.dv-classroom .dv-exp-main .dv-multi .dv-numbers { display: none !important; }  /* the title says where */
body.dv-classroom .dv-exp-main .dv-multi .dv-col-title, body.dv-classroom .dv-exp-main .dv-multi .dv-numbers {
  max-width: calc(var(--dv-img-multi) + 24px) !important; }
body.dv-classroom #dv-cmp-top { order: -3 !important; }
body.dv-classroom #dv-cmp-results { order: -2 !important; }
body.dv-classroom #dv-cmp-player { order: -1 !important; }

/* No "Error" overlay on pictures and text: every error already arrives as a message (toast) that says
   what happened, and a Stop raced by gradio's own end-of-run message would draw one over the frames. */
.gradio-container [data-testid="status-tracker"]:has(span.error) { display: none !important; }

/* contrast (WCAG AA, checked with axe-core): labels, tabs and the footer darker than the theme's */
.gradio-container [data-testid="block-info"] { color: #312e81 !important; }
.gradio-container button[role="tab"] { color: #374151 !important; }
.gradio-container button[role="tab"][aria-selected="true"] { color: #3730a3 !important; }
footer, footer a, footer button, .show-api { color: #4b5563 !important; }
.gradio-container .info-text, .gradio-container [data-testid="block-info"] + .info-text { color: #4b5563 !important; }
.gradio-container label[data-testid="block-label"] { color: #312e81 !important; background: #eef2ff !important; }
.gradio-container .min_value, .gradio-container .max_value { color: #4b5563 !important; }
.gradio-container [data-testid="upload-text"], .gradio-container [data-testid="upload-text"] * { color: #3730a3 !important; }
.gradio-container .block > .label { color: #3730a3 !important; }
.gradio-container label.selected { background: #4338ca !important; border-color: #4338ca !important; }  /* chosen schedules */  /* "…or pick an example" above gr.Examples */
.gradio-container button.primary { background: #4338ca !important; border-color: #4338ca !important; color: #fff !important; }
.gradio-container button.primary:hover { background: #3730a3 !important; }

/* keyboard users see where they are: a thick ring on whatever has the focus (tabs and checkboxes had none) */
.gradio-container :focus-visible { outline: 3px solid #b45309 !important; outline-offset: 2px !important; }

/* glossary words: a dotted underline; the line shows on hover and on keyboard focus */
.dv-term { text-decoration: underline dotted; text-underline-offset: 3px; cursor: help; position: relative; }
.dv-term:hover::after, .dv-term:focus::after, .dv-term:focus-within::after {
  content: attr(data-tip); position: absolute; left: 0; top: calc(100% + 4px); z-index: 60; width: max-content;
  max-width: min(360px, 80vw); background: #111827; color: #fff; padding: 6px 9px; border-radius: 6px;
  font-size: 15px; font-weight: normal; line-height: 1.35; white-space: normal; text-align: left; }

/* the guided lesson's panel: one sentence, one question, Back / Next */
#dv-lesson { border: 2px solid #6d28d9 !important; border-radius: 12px !important; padding: 10px 14px !important;
             background: #f5f3ff !important; }
#dv-lesson .prose { font-size: 1.1em; }

/* the prompt's prior table: headers never wrap ("pri/or") */
#dv-conditioning th, #dv-conditioning td { white-space: nowrap; }
/* forward pictures: the schedule's label above the picture, not over its top-left corner */
.dv-noised .image-container { padding-top: 34px; box-sizing: border-box; height: 100%; }
.dv-noised .image-container > button, .dv-noised .image-frame { height: 100% !important; width: 100%; }
"""

# Classroom mode from the URL (?classroom=1) so a teacher can bookmark it. And names for two things
# gradio draws without one (found by axe-core): the button around a clickable picture, and the
# aria-label it puts on an empty placeholder without a role.
HEAD_JS = """
() => {
  const LABEL_TIPS = __LABEL_TIPS__;
  const on = new URLSearchParams(window.location.search).get('classroom');
  if (on === '1' || on === 'true') document.body.classList.add('dv-classroom');
  const name = () => {
    document.querySelectorAll('.image-container > button:not([aria-label])').forEach((b) => {
      const block = b.closest('.block');
      const label = block && block.querySelector('label[data-testid="block-label"]');
      b.setAttribute('aria-label', ((label && label.innerText.trim()) || 'picture') + ': click a pixel to explain it');
    });
    document.querySelectorAll('.empty[aria-label]:not([role])').forEach((e) => e.setAttribute('role', 'img'));
    // gradio's screen-reader announcement of a finished event is an untranslated key: say it in words
    document.querySelectorAll('.sr-only').forEach((e) => {
      if (e.textContent.trim() === 'common.complete') e.textContent = 'Finished.';
    });
    // glossary words in the controls' labels: the line on hover (label) and read out on focus (the input)
    document.querySelectorAll('[data-testid="block-info"]:not([data-dv-tip])').forEach((e) => {
      const tip = LABEL_TIPS[e.textContent.trim()];
      e.setAttribute('data-dv-tip', tip ? '1' : '0');
      if (!tip) return;
      e.classList.add('dv-term');
      e.setAttribute('data-tip', tip);
      const block = e.closest('.block');
      const input = block && block.querySelector('input, textarea');
      if (input) input.setAttribute('aria-description', tip);
    });
  };
  let pending = false;
  new MutationObserver(() => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; name(); }); } })
    .observe(document.body, {childList: true, subtree: true, characterData: true});
  name();
}
"""

# The controls whose label is a glossary word (their label text -> the glossary's term).
LABEL_TERMS = {"Sampler": "sampler", "Noise schedule": "schedule", "Schedule": "schedule", "Steps": "step",
               "Seed": "seed", "Guidance": "guidance", "Noise seed (which ε)": "seed"}


def _label_tips() -> str:
    import json

    from ..glossary import glossary_html_title

    return json.dumps({label: glossary_html_title(term) for label, term in LABEL_TERMS.items()})


HEAD_JS = HEAD_JS.replace("__LABEL_TIPS__", _label_tips())

# On page load: the checkbox shows what the URL asked for.
CLASSROOM_FROM_URL_JS = """() => {
  const on = new URLSearchParams(window.location.search).get('classroom');
  return on === '1' || on === 'true';
}"""

# The switch: the page's look, and the URL (a reload or a bookmark keeps the mode).
TOGGLE_CLASSROOM_JS = """(on) => {
  document.body.classList.toggle('dv-classroom', !!on);
  const url = new URL(window.location.href);
  if (on) url.searchParams.set('classroom', '1'); else url.searchParams.delete('classroom');
  window.history.replaceState(null, '', url);
  return on;
}"""
