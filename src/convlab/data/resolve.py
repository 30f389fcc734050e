"""Validating a data section against its dataset's own settings model.

``DataConfig`` calls :func:`resolve_section` when it validates: the keys a dataset adds
(``label`` of cifar100, ``split`` of emnist) are checked against that dataset's settings
model, unknown keys refused with the closest names, defaults filled in so the resolved
config is complete.
"""

from __future__ import annotations

import difflib
from collections.abc import Set
from typing import Any

from pydantic import BaseModel, ValidationError

from convlab.data import catalog  # noqa: F401 - fills DATASETS
from convlab.data.spec import DATASETS, NoSettings
from convlab.errors import ConfigError
from convlab.schema import format_validation_error
from convlab.usercode import is_user_ref

DEFAULT_DATASET = "mnist"
# Keys convlab 0.1 wrote into every run's data section, whatever the dataset
LEGACY_KEYS = ("synthetic", "test_fraction")


def resolve_section(raw: dict[str, Any], shared: Set[str]) -> dict[str, Any]:
    """Validate the keys a dataset adds to a raw data section and fill in its defaults.

    ``shared``: the keys every dataset has (DataConfig's own fields), left to it. Raises
    ValueError (pydantic reports it at ``data``) naming the unknown dataset or key.
    """
    name = raw.get("dataset", DEFAULT_DATASET)
    if not isinstance(name, str):
        return raw  # DataConfig reports the type
    model = settings_model(name)
    own = {k: v for k, v in raw.items() if k not in shared}
    unknown = sorted(set(own) - set(model.model_fields))
    if unknown:
        raise ValueError(_unknown_key_message(name, unknown[0], model, shared))
    try:
        settings = model.model_validate(own)
    except ValidationError as e:
        raise ValueError(format_validation_error(e, "").removeprefix(": ")) from None
    kept = {k: v for k, v in raw.items() if k in shared}
    return {**kept, **settings.model_dump(mode="json")}


def settings_model(name: str) -> type[BaseModel]:
    """The settings model of a dataset name (a user's loader adds no key: it has args)."""
    if is_user_ref(name):
        return NoSettings
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS.list(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"dataset: unknown dataset {name!r}{hint} (expected one of "
            f"{', '.join(DATASETS.list())}, or a user's loader 'file.py:function')"
        )
    return DATASETS.get(name).settings


def _unknown_key_message(name: str, key: str, model: type[BaseModel], shared: Set[str]) -> str:
    own = sorted(model.model_fields)
    close = difflib.get_close_matches(key, [*sorted(shared), *own], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    has = f"its own keys: {', '.join(own)}" if own else "it adds no keys of its own"
    return f"{key}: unknown key for dataset {name!r}{hint} ({has})"


def dataset_settings(cfg: Any) -> Any:
    """The validated settings of a DataConfig's dataset; a bad key is a one-line
    ConfigError."""
    try:
        return settings_model(cfg.dataset).model_validate(cfg.settings)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, f"data ({cfg.dataset})")) from None
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None


def drop_legacy_keys(section: dict[str, Any]) -> None:
    """A run folder's data section as this version reads it: drop the keys earlier
    versions recorded for every dataset but this dataset does not take (they had no
    effect there). Experiment files are not upgraded: there such a key is an error."""
    name = section.get("dataset", DEFAULT_DATASET)
    try:
        known = settings_model(name).model_fields if isinstance(name, str) else {}
    except ValueError:
        return  # an unknown dataset: validation says so
    for key in LEGACY_KEYS:
        if key in section and key not in known:
            del section[key]
