"""matplotlib, set up the one way opbench draws: the file-only Agg backend, and text drawn literally.

Case names, run labels and published headings come from users' files; a `$` in one would otherwise start
matplotlib's mathtext and fail the whole chart (`ValueError: unclosed math`), so `text.parse_math` is off
(opbench's own labels use no mathtext).
"""

from __future__ import annotations

from typing import Any


def matplotlib_for_files() -> Any:  # -> the matplotlib module
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    return matplotlib


def pyplot() -> Any:  # -> matplotlib.pyplot
    matplotlib_for_files()
    import matplotlib.pyplot as plt

    return plt
