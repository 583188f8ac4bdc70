"""Wording shared by what npgen prints and writes: counts with the right plural."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """ "1 training image", "2 training images", "1,000 admissible candidates": the count, then the noun, made plural
    (by adding "s", or `plural_noun`) unless the count is exactly 1."""
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{count:,} {word}"
