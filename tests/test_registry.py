from __future__ import annotations

import pytest

from convlab.registry import Registry, RegistryError


def test_register_get_list_and_duplicates() -> None:
    reg: Registry[int] = Registry("widget")

    @reg.register("resnet18")
    def a() -> int:
        return 1

    reg.add("resnet34", 2)  # type: ignore[arg-type]
    reg.add("cnn", 3)  # type: ignore[arg-type]
    assert reg.list("res*") == ["resnet18", "resnet34"]
    assert reg.get("cnn") == 3 and "cnn" in reg and len(reg) == 3
    with pytest.raises(RegistryError, match="already registered"):
        reg.add("cnn", 4)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="unknown widget 'x'; expected one of: cnn, resnet18"):
        reg.get("x")
