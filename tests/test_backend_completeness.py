"""Every adapter accounts for every catalog family: a builder, or a declared reason it has none.

Without this check a family added to the catalog but forgotten in one adapter would silently become
`unsupported` on that backend. The adapters are imported here without their frameworks (they import them
only when used), so this test runs on every machine.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

import pytest

from opbench.backends import _REGISTRY, Backend
from opbench.backends._base import undeclared_families
from opbench.catalog import FAMILIES, Case

BUILT_IN = {name: target for name, target in _REGISTRY.items() if target.startswith("opbench.backends.")}


def _adapter(target: str) -> type[Backend]:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_family_has_a_builder_or_a_declared_reason(name: str) -> None:
    assert undeclared_families(_adapter(BUILT_IN[name])) == {}


def test_the_check_catches_a_missing_builder_and_a_bad_declaration() -> None:
    builders = dict(_adapter(BUILT_IN["cpu"]).builders)
    builders.pop("Softmax")

    class Forgetful(Backend):
        name = "forgetful"
        framework = "none"

    Forgetful.builders = builders
    Forgetful.unsupported = {"Sort": "", "NoSuchFamily": "why"}
    problems = undeclared_families(Forgetful)
    assert problems == {"Softmax": "no builder and no declared reason",
                        "Sort": "a builder and a declared reason", "NoSuchFamily": "not a catalog family"}
    Forgetful.builders = {k: v for k, v in builders.items() if k != "Sort"}
    assert undeclared_families(Forgetful)["Sort"] == "declared unsupported with an empty reason"


def test_a_declared_reason_is_what_the_result_says() -> None:
    from opbench.engine.runner import measure_case

    class Partial(Backend):
        name = "partial"
        framework = "none"
        builders: ClassVar = {}
        unsupported: ClassVar = {family: "this framework has no such operation" for family in FAMILIES}
        unsupported_dtypes: ClassVar = {"float16": "no half precision here"}

    case = Case("ReLU", ((4, 4),))
    result = measure_case(Partial(), case)
    assert result.status == "unsupported"
    assert result.error == "partial does not implement ReLU: this framework has no such operation"
    half = measure_case(Partial(), case, dtype="float16")
    assert (half.status, half.error) == ("unsupported", "partial cannot run float16: no half precision here")


def test_each_adapter_brings_its_framework_packages_to_the_machine_record() -> None:
    from opbench import machine

    recorded = machine.packages()
    assert recorded[:3] == machine.CORE_PACKAGES
    for name in BUILT_IN:
        assert set(_adapter(BUILT_IN[name]).packages) <= set(recorded), name
    assert {"torch", "mlx", "jax", "cupy-cuda12x"} <= set(recorded)
