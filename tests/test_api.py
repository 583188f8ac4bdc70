"""npgen.api names every workflow; those whose modules load numba, the sampler or FAISS are imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys

from npgen import api


def test_every_name_the_api_lists_is_defined_where_it_says():
    for name, module in api.LAZY.items():
        value = getattr(api, name)
        assert sys.modules[module].__dict__[name] is value, name
    assert set(api.__all__) <= set(dir(api))


def test_importing_the_api_loads_neither_numba_nor_the_sampler_nor_faiss():
    code = "import json, sys, npgen.api; print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert [m for m in ("numba", "faiss", "npgen.rule.sampler", "npgen.data.database") if m in modules] == []
