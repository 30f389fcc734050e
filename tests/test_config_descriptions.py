"""Every config field says what it does: `config keys` and `config schema` show it."""

from __future__ import annotations

from convlab.commands.keys import settings_models


def test_every_config_field_has_a_description() -> None:
    missing = [f"{label}.{name}" for label, model in settings_models().items()
               for name, field in model.model_fields.items() if not field.description]
    assert not missing, f"fields without a description: {missing}"
