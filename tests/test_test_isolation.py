"""The test suite keeps to its temporary folders: npgen's cache is never the user's ~/.cache/npgen."""

import os
import subprocess
import sys
from pathlib import Path

from npgen.data.files import cache_root


def test_npgen_cache_is_this_sessions_temporary_folder(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    assert Path(os.environ["NPGEN_CACHE"]).is_relative_to(base)
    assert cache_root().is_relative_to(base) and not cache_root().is_relative_to(Path.home() / ".cache")
    child = subprocess.run(
        [sys.executable, "-c", "from npgen.data.files import cache_root; print(cache_root())"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert Path(child.stdout.strip()).is_relative_to(base)  # the commands a test runs inherit it
