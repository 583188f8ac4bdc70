"""A run's settings in one line (plain text: the command line makes it printable), from its manifest: what it is conditioned on and the rule's main parameters."""

from __future__ import annotations

import os

from npgen.params import recorded_params
from npgen.wording import plural


def conditioning(manifest: dict) -> str:
    """What the samples of a run are conditioned on, in words (class, class map, completion, mixture, exclusion)."""
    params = manifest["params"]
    if manifest.get("completion"):
        record = manifest["completion"]
        text = (
            f"{record['per_input']} completions of each of {record['n_inputs']} inputs, --mask {record['mask']} given"
        )
        if manifest["class_label"] is not None:
            text += f", as class {manifest['class_name']!r}"
    elif manifest.get("class_map"):
        text = "regions steered by --class-map " + manifest["class_map"]["spec"]
    elif manifest["class_label"] is not None:
        text = f"class {manifest['class_name']!r}"
    elif params.get("class_mixture"):
        how = "stratified" if recorded_params(params)["class_draw"] == "stratified" else "each independently"
        text = f"classes drawn from the training class shares ({how})"
    else:
        text = "every training image"
    if manifest.get("exclusion"):
        text += f"; {plural(manifest['exclusion']['n_images'], 'training image')} excluded"
    return text


def describe_settings(manifest: dict, out: str | os.PathLike) -> str:
    """One line said before sampling: how many samples of which dataset go where, and the settings."""
    params = manifest["params"]
    budget = (
        "no source budget"
        if params["max_source_share"] >= 1
        else f"source budget {params['source_budget']} pixels per training image "
        f"(max_source_share={params['max_source_share']})"
    )
    extras = []
    if params.get("size"):
        extras.append(f"{params['size']} samples")
    if params.get("levels", 1) > 1:
        extras.append(f"{params['levels']} pyramid levels (anchor {params['anchor']})")
    if params.get("max_part_share", 1.0) < 1:
        extras.append(f"copied parts of at most {params['max_part_share']:g} of a level's pixels")
    if params.get("max_reuse", 0.0) > 0:
        extras.append(f"no source pixel copied more than {params['max_reuse']:g}x its even share at the coarsest level")
    if params.get("outside_canvas", "pad") != "pad":
        extras.append("context outside the sample ignored")
    return (
        f"sampling {manifest['n_samples']} of {manifest['dataset']['name']} into {out}: "
        f"{conditioning(manifest)}; h={manifest['database']['params']['half_window']}, k_min={params['k_min']}, "
        + "".join(f"{extra}, " for extra in extras)
        + f"{budget}, seed {params.get('seed')}"
    )
