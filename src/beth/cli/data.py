"""`beth info`, `beth convert`, `beth synth`: working with BETH files."""

from __future__ import annotations
