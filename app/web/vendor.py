"""Browser libraries the pages use, served by the app itself from node_modules (installed by `dev.py run` and
`dev.py test` with npm), never from a CDN: today the bpmn-js viewer of the case page's diagram."""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_from_directory

from app.config import PROJECT_ROOT

BPMN_JS_DIST = PROJECT_ROOT / "node_modules" / "bpmn-js" / "dist"
VIEWER_SCRIPT = "bpmn-navigated-viewer.production.min.js"

bp = Blueprint("vendor", __name__, url_prefix="/static/vendor")


def viewer_installed() -> bool:
    """True when npm installed the bpmn-js viewer the case page's diagram needs."""
    return (BPMN_JS_DIST / VIEWER_SCRIPT).is_file()


@bp.get("/bpmn-js/<path:filename>")
def bpmn_js(filename: str) -> Response:
    """A file of bpmn-js's dist folder (the viewer script, its CSS and font); a 404 saying how to install it."""
    if not viewer_installed():
        abort(404, description="The bpmn-js diagram viewer is not installed: run `python3 dev.py run` (it "
                               "installs it with npm), or `npm ci --ignore-scripts` in the project folder.")
    return send_from_directory(BPMN_JS_DIST, filename, max_age=24 * 3600)
