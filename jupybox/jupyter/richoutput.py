"""What a Python cell's container shows in the notebook beyond its text: the last expression's
value, matplotlib figures, and its traceback, as IPython would show them.

All of it is made inside the container, so none of it is trusted: only inert kinds of output pass
(text, PNG/JPEG, sanitized HTML, LaTeX, JSON). HTML is cleaned by nh3 (the Ammonia sanitizer: no
script, no event handler, no iframe, no form), since a front end runs the scripts of the HTML a
cell outputs, with the rights of the notebook's user: a container must not get those. SVG and
Markdown (which may carry HTML) are dropped when a safer form of the same value is there, and
otherwise shown as text.
"""

from __future__ import annotations

import base64
import binascii

MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
TEXT = {"text/plain", "text/latex"}
# attributes HTML tables and simple layouts use (pandas' DataFrame HTML among them)
HTML_ATTRIBUTES = {"*": {"class", "title", "style", "align", "valign", "colspan", "rowspan", "border", "width",
                         "height"},
                   "img": {"src", "alt"}, "a": {"href"}}


def clean_html(text: str) -> str:
    import nh3

    # <style> goes with its content (a stylesheet could cover the page); tables and text stay
    return nh3.clean(text, attributes=HTML_ATTRIBUTES, url_schemes={"http", "https", "data"},
                     link_rel="noopener noreferrer")


def _image_ok(mime: str, value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        head = base64.b64decode(value[:64], validate=False)
    except (binascii.Error, ValueError):
        return False
    return head.startswith(MAGIC[mime])


def clean_bundle(data, metadata=None) -> tuple[dict, dict]:
    """The parts of a mime bundle from a container that may reach the notebook."""
    out: dict = {}
    if not isinstance(data, dict):
        return {"text/plain": "<an output the container sent malformed>"}, {}
    for mime, value in data.items():
        if mime in TEXT and isinstance(value, str):
            out[mime] = value
        elif mime in MAGIC and _image_ok(mime, value):
            out[mime] = value
        elif mime == "text/html" and isinstance(value, str):
            out[mime] = clean_html(value)
        elif mime == "application/json" and isinstance(value, (dict, list)):
            out[mime] = value
    if "text/plain" not in out:
        fallback = data.get("text/markdown") or data.get("image/svg+xml")
        out["text/plain"] = fallback if isinstance(fallback, str) else "<an output with no text form>"
    meta: dict = {}
    if isinstance(metadata, dict):
        for mime, md in metadata.items():
            if mime in out and isinstance(md, dict):
                meta[mime] = {k: v for k, v in md.items() if k in ("width", "height") and isinstance(v, (int, float))}
    return out, meta


class RichResult:
    """The value of a cell's last expression, as the container displayed it: ``Out[N]`` shows its
    rich forms. The value itself stays in the container (``-o NAME`` brings a variable back)."""

    def __init__(self, data: dict, metadata: dict):
        self.data = data
        self.metadata = metadata

    def _repr_mimebundle_(self, include=None, exclude=None):
        return dict(self.data), dict(self.metadata)

    def __repr__(self) -> str:
        return self.data.get("text/plain", "")

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


def show(message: dict) -> None:
    """A ``display`` message from the channel: into the cell, now."""
    from IPython.display import display

    data, meta = clean_bundle(message.get("data"), message.get("metadata"))
    display(data, raw=True, metadata=meta)


def result(message: dict | None) -> RichResult | None:
    if message is None:
        return None
    data, meta = clean_bundle(message.get("data"), message.get("metadata"))
    return RichResult(data, meta)


def with_traceback(exc: BaseException, lines: list) -> BaseException:
    """Make IPython show ``lines`` (the container's traceback) as ``exc``'s traceback: one traceback,
    the user's frames, as for a plain cell."""
    text = [str(line) for line in lines]
    exc._render_traceback_ = lambda: text  # type: ignore[attr-defined]
    return exc
