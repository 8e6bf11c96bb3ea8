"""The CLI tests' helpers live in jbx_cli_helpers.py (put on sys.path here, since the suite runs
with --import-mode=importlib)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
