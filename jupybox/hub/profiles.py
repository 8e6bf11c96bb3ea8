"""Profiles: the images (and limits) a user may choose on the spawn page.

    c.JupyboxSpawner.profiles = [
        {"display_name": "Python (the hub's own)", "image": "host", "default": True},
        {"display_name": "Data science, 2 GB", "slug": "ds", "image": "class/ds:2024",
         "mem_limit": "2G", "cpu_limit": 1},
    ]

Each profile has ``display_name`` and ``image``; ``slug`` (default: from the display name),
``description``, ``default``, and overrides of the spawner's ``mem_limit``, ``cpu_limit``,
``cpu_guarantee``, ``pids_limit`` and ``environment`` are optional. With two profiles or more the
spawn page shows them (``options_form``); the REST API takes ``{"profile": SLUG}``. A user gets
only what a profile says: the form names a profile, never an image.
"""

from __future__ import annotations

import html
import re

KEYS = {"display_name", "slug", "description", "default", "image", "mem_limit", "cpu_limit", "cpu_guarantee",
        "pids_limit", "environment"}
OVERRIDES = ("mem_limit", "cpu_limit", "cpu_guarantee", "pids_limit", "environment")


def slug_of(profile: dict) -> str:
    return profile.get("slug") or re.sub(r"[^a-z0-9]+", "-", profile["display_name"].lower()).strip("-")


def check(profiles: list[dict]) -> list[dict]:
    """The profiles, each with its slug; a ValueError names what is wrong with which one."""
    out, seen = [], set()
    for i, p in enumerate(profiles):
        if not isinstance(p, dict):
            raise ValueError(f"profiles[{i}] is not a dict")
        unknown = set(p) - KEYS
        if unknown:
            raise ValueError(f"profiles[{i}]: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("display_name", "image"):
            if not isinstance(p.get(key), str) or not p[key]:
                raise ValueError(f"profiles[{i}]: {key} (a non-empty string) is required")
        p = dict(p, slug=slug_of(p))
        if p["slug"] in seen:
            raise ValueError(f"profiles[{i}]: slug {p['slug']!r} is used twice")
        seen.add(p["slug"])
        out.append(p)
    return out


def form(profiles: list[dict]) -> str:
    """The spawn page's HTML: one radio button per profile (none when there is nothing to choose)."""
    if len(profiles) < 2:
        return ""
    default = next((p["slug"] for p in profiles if p.get("default")), profiles[0]["slug"])
    rows = []
    for p in profiles:
        slug = html.escape(p["slug"], quote=True)
        checked = " checked" if p["slug"] == default else ""
        desc = f'<div class="text-muted">{html.escape(p["description"])}</div>' if p.get("description") else ""
        rows.append(f'<div class="radio"><label><input type="radio" name="profile" value="{slug}"{checked}> '
                    f'{html.escape(p["display_name"])}</label>{desc}</div>')
    return "<div class=\"form-group\">\n" + "\n".join(rows) + "\n</div>"


def from_form(formdata: dict) -> dict:
    """The form's fields (lists of strings) -> user options."""
    chosen = formdata.get("profile") or []
    return {"profile": chosen[0]} if chosen else {}


def choose(profiles: list[dict], user_options: dict) -> dict:
    """The profile the user asked for (the default one if none); ValueError for an unknown one."""
    if not profiles:
        return {}
    wanted = (user_options or {}).get("profile")
    if wanted is None:
        return next((p for p in profiles if p.get("default")), profiles[0])
    for p in profiles:
        if p["slug"] == wanted:
            return p
    raise ValueError(f"no such profile: {wanted!r} (one of {', '.join(p['slug'] for p in profiles)})")
