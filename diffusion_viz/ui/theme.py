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
.dv-empty { padding: 48px 16px; text-align: center; color: var(--body-text-color-subdued);
            border: 2px dashed var(--border-color-primary); border-radius: 12px; font-size: 1.15em; }
.dv-cols { display: flex; gap: 14px; flex-wrap: wrap; justify-content: center; }
.dv-col { display: flex; flex-direction: column; align-items: center; }
.dv-col-title { font-weight: 700; margin-bottom: 4px; text-align: center; font-size: 0.95em; }
.dv-panels { display: flex; gap: 12px; flex-wrap: wrap; justify-content: center; }
.dv-multi .dv-panels { flex-direction: column; gap: 6px; }
.dv-panel { margin: 0; display: flex; flex-direction: column; align-items: center; }
.dv-panel figcaption { max-width: var(--dv-img); text-align: center; font-size: 0.95em; margin-top: 4px; }
.dv-multi .dv-panel figcaption { max-width: var(--dv-img-multi); font-size: 0.85em; }
.dv-img { width: var(--dv-img); height: var(--dv-img); image-rendering: pixelated;
          border-radius: 6px; background: #222; box-shadow: 0 1px 4px rgba(0,0,0,.25); }
.dv-multi .dv-img { width: var(--dv-img-multi); height: var(--dv-img-multi); }
.dv-numbers { display: flex; gap: 14px; flex-wrap: wrap; justify-content: center; margin: 6px 0;
              font-variant-numeric: tabular-nums; }
.dv-multi .dv-numbers { gap: 6px 10px; font-size: 0.85em; max-width: calc(var(--dv-img-multi) + 20px); }
.dv-controls { display: flex; align-items: center; gap: 10px; margin-top: 8px; flex-wrap: wrap; }
.dv-slider { flex: 1; min-width: 200px; height: 28px; accent-color: var(--color-accent); }
.dv-btn { font-size: 1.05em; padding: 6px 14px; border-radius: 8px; cursor: pointer;
          border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill); }
.dv-play { min-width: 96px; font-weight: 700; }
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

/* classroom mode: readable from the back of the room */
body.dv-classroom { --dv-img: 380px; --dv-img-multi: 260px; --dv-mvg: min(330px, 21vw); }
body.dv-classroom .dv-mvg { font-size: 20px; }
body.dv-classroom .gradio-container { font-size: 20px; max-width: 100% !important; }
body.dv-classroom .dv-player { font-size: 22px; }
body.dv-classroom .dv-help { font-size: 1.2em; }
body.dv-classroom .prose, body.dv-classroom label span, body.dv-classroom button { font-size: 1.15em !important; }
body.dv-classroom .dv-advanced { display: none; }
/* pictures first, full width; the controls move below them */
body.dv-classroom #dv-denoise-row { flex-direction: column; }
body.dv-classroom #dv-denoise-main { order: -1; }
body.dv-classroom #dv-mvg-cards { order: -1; }
"""

# Classroom mode from the URL (?classroom=1) so a teacher can bookmark it.
HEAD_JS = """
() => {
  const on = new URLSearchParams(window.location.search).get('classroom');
  if (on === '1' || on === 'true') document.body.classList.add('dv-classroom');
}
"""

TOGGLE_CLASSROOM_JS = "(on) => { document.body.classList.toggle('dv-classroom', !!on); return on; }"
