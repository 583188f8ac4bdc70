"""Class names and indices: what `--class`, class maps and exclusion specs accept."""

from __future__ import annotations

from npgen.errors import NpgenError


def resolve_class(class_names: tuple[str, ...], value: str | int | None) -> int | None:
    """A class given by index ("3") or by name ("cat") -> its index; None stays None (unconditional)."""
    if value is None:
        return None
    text = str(value)
    if text in class_names:
        return class_names.index(text)
    folded = [name.casefold() for name in class_names]
    if folded.count(text.casefold()) == 1:
        return folded.index(text.casefold())
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    raise NpgenError(
        f"unknown class {text!r}; choose one of: {', '.join(class_names)} (or its index 0..{len(class_names) - 1})"
    )
