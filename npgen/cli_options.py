"""The options the `npgen` commands share: one per method parameter (`param_options`), with the default each takes
(`default_text`), and `--clusters`."""

from __future__ import annotations

import click

from npgen.data.datasets import KNOWN, dataset_card, single_image_preset
from npgen.params import PARAMS, Param

clusters_option = click.option(
    "--clusters",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="A flat folder of unlabelled images: split it into K clusters (its classes). Default: the number (2 to 10, "
    "or 1) whose k-means clusters separate best (mean silhouette). Recorded in the database and run, and verified.",
)


def default_text(param: Param) -> str:
    """What an unset parameter takes: its default, or first the value a dataset card's preset (or the single-image
    preset) gives it, when one does, with the values the presets give."""
    default = "derived" if param.default is None else f"{param.default:g}" if param.kind is not str else param.default
    presets = [(name, dataset_card(name).get("preset", {})) for name in KNOWN]
    values = [f"{name} {preset[param.name]}" for name, preset in presets if param.name in preset]
    if param.name in single_image_preset(64, 64):
        values.append("an image file: the single-image preset")
    if not values:
        return f"default: {default}"
    return f"default: the dataset's preset ({', '.join(values)}), else {default}"


def param_options(stage: str):
    """One option per method parameter of `stage` (npgen.params): unset means the dataset's preset, else the default."""

    def decorate(command):
        for param in reversed([p for p in PARAMS.values() if p.stage == stage]):
            text = f"{param.help} [{'one of' if param.choices else 'range'} {param.range_text}; {default_text(param)}]"
            kind = click.Choice(param.choices) if param.choices else param.kind
            command = click.option("--" + param.name.replace("_", "-"), param.name, type=kind, default=None, help=text)(
                command
            )
        return command

    return decorate
