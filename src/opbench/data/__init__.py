"""Data shipped with opbench: the published tables it compares against (`PUBLISHED`).

`published/seed-m3-max-tables.md` holds the seed article's Detailed and Average tables (M3 Max; only the
tables and the title line that names the machine, not the article's prose); `published/
mlx-benchmark-detailed_benchmark.md` is mlx-benchmark's per-device table file. Both read with `opbench import`
or as the B side of `opbench compare RUN FILE[#DEVICE]`.
"""

from __future__ import annotations

from pathlib import Path

PUBLISHED = Path(__file__).parent / "published"
SEED_TABLES = PUBLISHED / "seed-m3-max-tables.md"
REFERENCE_TABLES = PUBLISHED / "mlx-benchmark-detailed_benchmark.md"
