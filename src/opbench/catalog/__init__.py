"""The catalog: what opbench measures, framework-neutral. Presets select and scale its cases."""

from __future__ import annotations

from opbench.catalog._case import Case, Shape, format_shape, parse_shape, quick_dim
from opbench.catalog.families import FAMILIES, Family
from opbench.catalog.seed import EXTRA_CASES, SEED_CASES
from opbench.errors import UsageError, unknown

__all__ = ["FAMILIES", "PRESETS", "Case", "Family", "Shape", "all_cases", "family_order", "format_shape",
           "parse_shape", "preset_cases", "select_cases"]

PRESETS = ("seed", "quick")


def all_cases() -> list[Case]:
    """Every case at full size: the seed's 85, then LayerNorm and SDPA, then those of loaded user catalogs
    (`catalog.user`)."""
    from opbench.catalog.user import user_cases

    return [*SEED_CASES, *EXTRA_CASES, *user_cases()]


def preset_cases(preset: str) -> list[Case]:
    if preset == "seed":
        return all_cases()
    if preset == "quick":  # scaling can map two seed shapes onto one: keep each name once
        unique: dict[str, Case] = {}
        for case in all_cases():
            scaled = case.scaled(quick_dim)
            unique.setdefault(scaled.name, scaled)
        return list(unique.values())
    raise unknown("preset", preset, PRESETS)


def family_order(cases: list[Case]) -> list[str]:
    seen: dict[str, None] = {}
    for c in cases:
        seen.setdefault(c.family, None)
    return list(seen)


def select_cases(cases: list[Case], ops: list[str] | None) -> list[Case]:
    """Filter by family names (case-insensitive) or exact case names; unknown names are a UsageError."""
    if not ops:
        return cases
    families = {f.lower(): f for f in FAMILIES}
    names = {c.name for c in cases}
    wanted_fams: set[str] = set()
    wanted_names: set[str] = set()
    for op in ops:
        op = op.strip()
        if op.lower() in families:
            wanted_fams.add(families[op.lower()])
        elif op in names:
            wanted_names.add(op)
        else:
            raise unknown("op", op, sorted(FAMILIES))
    chosen = [c for c in cases if c.family in wanted_fams or c.name in wanted_names]
    if not chosen:
        raise UsageError(f"no case matches --ops {','.join(ops)}")
    return chosen
