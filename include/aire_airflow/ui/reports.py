"""Serving a run's report files: only from the run's own folder, under a strict policy.

Evidently's ``drift.html`` embeds batch values raw inside ``<script>``: a category value
in a batch can be script. Reports are therefore served with a CSP ``sandbox`` (no
``allow-same-origin``: the document gets an opaque origin, so it cannot read the Airflow
session or call ``/aire`` or ``/api/v2`` as the user, even when opened directly), no
network access at all, and shown only inside ``<iframe sandbox="allow-scripts">``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi.responses import FileResponse

# Evidently's report needs its inline scripts (plotly) to draw; nothing may leave the page.
REPORT_POLICY = ("sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
                 "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; "
                 "form-action 'none'; base-uri 'none'; frame-ancestors 'self'")
# The AIRE pages themselves: scripts and styles only from the app's own static routes.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def report_response(file: Path) -> FileResponse:
    media = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media == "application/json":
        media = f"{media}; charset=utf-8"
    return FileResponse(file, media_type=media,
                        headers={"Content-Security-Policy": REPORT_POLICY, "Cache-Control": "no-store",
                                 **SECURITY_HEADERS})
