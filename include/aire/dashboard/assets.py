"""The pages' one script and one stylesheet, served by the app from its own origin so the
pages' Content-Security-Policy can forbid inline scripts and styles."""

from __future__ import annotations

# Buttons carry their request in data- attributes (html.action_button): a POST with a
# JSON body, sent with the Airflow session cookie; a text box beside the button fills the
# field it names; the page reloads to show the result.
SCRIPT = r"""
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.action");
  if (!button) return;
  const body = JSON.parse(button.dataset.body || "{}");
  const status = document.getElementById("aire-status");
  if (button.dataset.ask) {
    const input = button.parentElement.querySelector("input");
    body[button.dataset.ask] = input ? input.value.trim() : "";
  }
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify(body),
    });
    const result = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(result.detail || response.status + " " + response.statusText);
    status.textContent = result.message || "done";
    status.className = "status ok";
    window.setTimeout(() => window.location.reload(), 400);
  } catch (error) {
    status.textContent = String(error.message || error);
    status.className = "status bad";
    button.disabled = false;
  }
});
"""

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #fff; }
nav { display: flex; gap: 1rem; padding: .6rem 1rem; background: #f3f5f9; border-bottom: 1px solid #dde2ea; }
nav a, .choose a { color: #2456a6; text-decoration: none; }
nav a.current, .choose a.current { font-weight: 600; text-decoration: underline; }
main { padding: 0 1rem 2rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { border: 1px solid #dde2ea; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; }
tr.failed td { background: #fff1f0; }
.badge { padding: 0 .4rem; border-radius: .6rem; font-size: .85em; border: 1px solid; }
.ok { color: #146c2e; } .bad { color: #b3261e; } .warn { color: #8a5a00; } .muted { color: #667085; }
.why { color: #b3261e; font-size: .85em; }
.problem { color: #b3261e; }
.burn.firing { color: #b3261e; font-weight: 600; }
.choose a { margin-right: .8rem; }
.status { font-weight: 600; }
.action-form { display: inline-flex; gap: .3rem; margin-right: .6rem; }
pre { margin: 0; white-space: pre-wrap; max-width: 60rem; }
iframe.report { width: 100%; height: 80vh; border: 1px solid #dde2ea; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
svg.chart { width: 640px; max-width: 100%; height: auto; border: 1px solid #eef1f5; }
svg .grid-line { stroke: #eef1f5; } svg .threshold { stroke: #b3261e; stroke-dasharray: 4 3; }
svg .tick, svg .legend { font-size: 10px; fill: #667085; } svg .chart-title { font-size: 12px; font-weight: 600; }
svg .line { fill: none; stroke-width: 2; }
svg .s0 { stroke: #2456a6; fill: #2456a6; } svg .s1 { stroke: #146c2e; fill: #146c2e; }
svg .s2 { stroke: #8a5a00; fill: #8a5a00; } svg .s3 { stroke: #6b3fa0; fill: #6b3fa0; }
svg polyline.line { fill: none; }
.postmortem { border-left: 3px solid #dde2ea; padding-left: 1rem; }
"""
