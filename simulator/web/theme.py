"""The look of the app: one calm theme and a little CSS, tuned to read well on a 1366x768 laptop.

Fonts are local (system stack), never fetched from a font CDN: the app must work offline.
"""

from __future__ import annotations

import gradio as gr

FONT = ("Inter", "ui-sans-serif", "system-ui", "Segoe UI", "DejaVu Sans", "sans-serif")
MONO = ("ui-monospace", "SFMono-Regular", "Consolas", "DejaVu Sans Mono", "monospace")


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue="teal",
        secondary_hue="slate",
        neutral_hue="slate",
        radius_size="md",
        text_size="md",
        font=FONT,
        font_mono=MONO,
    ).set(
        body_background_fill="#f4f6f8",
        block_border_width="1px",
        block_shadow="none",
        button_primary_background_fill="#0f766e",
        button_primary_background_fill_hover="#115e59",
        button_primary_text_color="#ffffff",
        # text on the Soft theme's light teal fills falls below WCAG AA contrast (axe-core's
        # color-contrast rule, checked in the browser tests): labels and hints one shade darker
        block_title_text_color="*primary_800",
        block_label_text_color="*primary_800",
        block_info_text_color="*neutral_600",
        body_text_color_subdued="*neutral_600",
        input_placeholder_color="*neutral_500",
        checkbox_label_background_fill_selected="#0f766e",
        checkbox_label_text_color_selected="#ffffff",
    )


PAGE_JS = """
() => {
  // Keyboard access to scrolled regions (axe-core: scrollable-region-focusable): the chat logs
  // scroll but hold nothing focusable, and CodeMirror's editable area carries no tabindex.
  const regions = [
    ['#chat .bubble-wrap', 'Conversation with the client'],
    ['#author-preview .bubble-wrap', 'Preview conversation'],
    ['#author-editor .cm-content', null],
  ];
  const mark = () => {
    for (const [sel, label] of regions) {
      document.querySelectorAll(sel + ':not([tabindex])').forEach((el) => {
        el.setAttribute('tabindex', '0');
        if (label) { el.setAttribute('role', 'log'); el.setAttribute('aria-label', label); }
      });
    }
  };
  // Inputs Gradio draws with a placeholder only get a name a screen reader says
  const names = [['#ad-users .search-input', 'Search accounts']];
  const name = () => {
    for (const [sel, label] of names) {
      document.querySelectorAll(sel + ':not([aria-label])')
        .forEach((el) => el.setAttribute('aria-label', label));
    }
  };
  mark();
  name();
  new MutationObserver(() => { mark(); name(); })
    .observe(document.body, {childList: true, subtree: true});
}
"""
"""Run once when the page loads (``mount_gradio_app(js=...)``)."""


CSS = """
.gradio-container { max-width: 1280px !important; width: 100% !important;
  margin: 0 auto !important; overflow: clip !important; }
footer { display: none !important; }
#chat button[aria-label="Clear"], #author-preview button[aria-label="Clear"] {
  display: none !important; }
#author-editor .cm-gutterElement { color: #475569 !important; }
#author-editor .cm-line span { color: inherit !important; }
#cs-header { background: #0f3d3a; border-radius: 10px; padding: 8px 16px; }
#cs-header .cs-bar, #cs-header .cs-bar * { color: #f8fafc !important; }
#cs-header .cs-bar { display: flex; align-items: center; gap: 14px; flex-wrap: nowrap;
  white-space: nowrap; font-size: .82rem; }
#cs-header .cs-brand { font-size: 1.2rem; font-weight: 700; letter-spacing: .2px; }
#cs-header .cs-brand small { font-weight: 400; opacity: .8; font-size: .8rem; margin-left: 6px; }
#cs-header .cs-models { margin-left: auto; }
#cs-header .cs-models b { font-weight: 600; }
#cs-header a.cs-signout { border: 1px solid rgba(255,255,255,.55); border-radius: 6px;
  padding: 3px 10px; text-decoration: none; }
#cs-header a.cs-signout:hover { background: rgba(255,255,255,.12); }
#cs-header .cs-bar .cs-offline { color: #713f12 !important; }
#cs-header .cs-bar .cs-online { color: #14532d !important; }
.cs-offline { background: #fde68a; color: #713f12; border-radius: 999px; padding: 2px 10px;
  font-weight: 700; font-size: .78rem; margin-left: 6px; }
.cs-online { background: #bbf7d0; color: #14532d; border-radius: 999px; padding: 2px 10px;
  font-weight: 700; font-size: .78rem; margin-left: 6px; }
.cs-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr));
  gap: 12px; }
.cs-card { background: #fff; border: 1px solid #d7dee5; border-radius: 10px; padding: 12px 14px;
  cursor: pointer; }
.cs-card:hover { border-color: #0f766e; }
.cs-card:focus-visible { outline: 3px solid #0f766e; outline-offset: 2px; }
.cs-card.cs-selected { border: 2px solid #0f766e; box-shadow: 0 0 0 3px rgba(15,118,110,.12);
  background: #f0fdfa; }
.cs-chosen { float: right; font-size: .74rem; font-weight: 600; color: #fff;
  background: #0f766e; border-radius: 999px; padding: 1px 8px; }
#start-bar { position: sticky; top: 0; z-index: 20; background: #f4f6f8;
  padding: 6px 0; align-items: flex-end; }
.cs-resume { background: #ecfeff; border: 1px solid #99f6e4; border-radius: 10px;
  padding: 8px 12px; }
.cs-resume-head b { font-size: 1.05rem; margin-right: 8px; }
.toast-wrap { top: auto !important; bottom: 16px !important; }
.cs-card p { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3;
  overflow: hidden; }
.cs-card.cs-selected p { display: block; }
.cs-card h3 { margin: 0 0 4px 0; font-size: 1.02rem; }
.cs-card .cs-meta { font-size: .8rem; color: #475569; margin-bottom: 6px; }
.cs-card p { margin: 4px 0; font-size: .88rem; line-height: 1.35; }
.cs-card .cs-label { font-weight: 600; color: #334155; }
.cs-tag { display: inline-block; background: #e2e8f0; color: #1e293b; border-radius: 999px;
  padding: 1px 8px; font-size: .74rem; margin: 0 4px 2px 0; }
.cs-stars { color: #b45309; letter-spacing: 1px; }
.cs-coach { display: flex; flex-direction: column; gap: 8px; }
.cs-coach-turn { background: #fff; border: 1px solid #d7dee5; border-left: 4px solid #94a3b8;
  border-radius: 8px; padding: 8px 10px; font-size: .88rem; }
.cs-coach-turn.cs-good { border-left-color: #15803d; }
.cs-coach-turn.cs-warn { border-left-color: #b45309; }
.cs-coach-turn.cs-pending { border-left-color: #cbd5e1; color: #64748b; }
.cs-coach-turn .cs-said { color: #475569; font-style: italic; margin-bottom: 4px; }
.cs-code { display: inline-block; font-family: ui-monospace, monospace; font-size: .76rem;
  background: #ccfbf1; color: #134e4a; border-radius: 4px; padding: 0 6px; margin-right: 4px; }
.cs-code.cs-corrected { background: #fef3c7; color: #78350f; }
.cs-alt { margin-top: 4px; }
.cs-alt b { color: #0f766e; }
.cs-risk-warning { margin: 0 0 8px; padding: 8px 10px; border: 2px solid #b91c1c;
                   border-radius: 6px; background: #fde8e8; font-size: .9rem; }
.cs-risk-warning b { color: #b91c1c; }
.cs-muted { color: #475569; font-size: .88rem; }
.cs-brief { background: #fff; border: 1px solid #d7dee5; border-radius: 10px; padding: 10px 14px;
  font-size: .9rem; }
.cs-errors { background: #fef2f2; border: 1px solid #fecaca; border-radius: 8px; padding: 8px 12px;
  font-family: ui-monospace, monospace; font-size: .84rem; color: #7f1d1d; }
.cs-errors li { margin: 2px 0; }
.cs-ok { background: #f0fdf4; border: 1px solid #bbf7d0; border-radius: 8px; padding: 8px 12px;
  color: #14532d; font-size: .9rem; }
.cs-notice { border-radius: 8px; padding: 6px 12px; font-size: .9rem; margin-top: 2px; }
.cs-notice-error { background: #fef2f2; border: 1px solid #fecaca; color: #7f1d1d; }
.cs-notice-info { background: #f0fdfa; border: 1px solid #99f6e4; color: #134e4a; }
a.cs-download { display: inline-block; border: 1px solid #0f766e; border-radius: 6px;
  padding: 4px 12px; color: #115e59; font-weight: 600; font-size: .88rem; text-decoration: none;
  white-space: nowrap; }
a.cs-download:hover, a.cs-download:focus-visible { background: #e6fffa; }
.cs-report-frame { width: 100%; height: 560px; border: 1px solid #d7dee5; border-radius: 10px;
  background: #fff; }
.cs-transcript { display: flex; flex-direction: column; gap: 6px; font-size: .9rem; }
.cs-tturn { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 6px 10px; }
.cs-tturn.cs-trainee { border-left: 4px solid #0f766e; }
.cs-tturn.cs-client { border-left: 4px solid #64748b; }
.cs-tturn.cs-abandoned { border-style: dashed; background: #f8fafc; }
.cs-tturn .cs-who { font-weight: 600; font-size: .8rem; color: #334155; }
.cs-tturn .cs-state { font-size: .76rem; color: #475569; }
.cs-kappa table { border-collapse: collapse; font-size: .82rem; width: 100%;
  table-layout: fixed; }
.cs-kappa td, .cs-kappa th { border-bottom: 1px solid #e2e8f0; padding: 3px 6px;
  text-align: left; border-left: none; border-right: none; }
.cs-hits { list-style: none; padding-left: 0; margin: 4px 0; }
.cs-hit { cursor: pointer; padding: 4px 8px; border-radius: 6px; }
.cs-hit:hover, .cs-hit:focus-visible { background: #e6fffa; outline: 2px solid #0f766e; }
.cs-tturn.cs-focus { box-shadow: 0 0 0 3px #f59e0b; }
.cs-kappa table.cs-gaps { table-layout: auto; }
.cs-kappa th { overflow-wrap: break-word; vertical-align: bottom; }
.cs-gaps th, .cs-gaps td { vertical-align: top; }
.cs-kappa .num { text-align: right; white-space: nowrap; }
.cs-kappa table.cs-sessions { table-layout: auto; }
.cs-sessions .cs-nowrap { white-space: nowrap; }
.cs-sessions .cs-wide { min-width: 40%; }
.cs-brief svg { width: 100%; height: auto; }
.cs-kappa { overflow-x: auto; }
#pg-metrics .cs-brief { overflow-x: auto; }
#pg-metrics svg.chart { min-width: 440px; }
#rv-table th, #rv-table td, #ad-users th, #ad-users td { word-break: normal !important;
  overflow-wrap: normal !important; }
@media (max-width: 1100px) {
  #cs-header .cs-bar { flex-wrap: wrap; white-space: normal; row-gap: 4px; }
  #cs-header .cs-models { order: 3; flex-basis: 100%; margin-left: 0; }
  #cs-header .cs-user { margin-left: auto; }
}
"""
