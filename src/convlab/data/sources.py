"""Reading a dataset: the registry entry that ``data.dataset`` names, or a user's loader.

The registry itself is :data:`convlab.data.spec.DATASETS` (filled by
:mod:`convlab.data.catalog`); this module is what the pipeline and the commands call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convlab.data.memory import check_fits
from convlab.data.paths import default_root, resolve_path  # noqa: F401 - the readers' API
from convlab.data.resolve import dataset_settings
from convlab.data.settings import DataConfig
from convlab.data.spec import DATASETS, DatasetInfo, Located
from convlab.errors import ConfigError
from convlab.usercode import is_user_ref

if TYPE_CHECKING:  # pragma: no cover
    from convlab.data import RawDataset


def load_raw(cfg: DataConfig) -> RawDataset:
    """Read the dataset that ``cfg.dataset`` names; every problem is a one-line error."""
    settings = dataset_settings(cfg)
    if is_user_ref(cfg.dataset):
        from convlab.data.userdata import load_user_dataset

        return load_user_dataset(cfg)
    if cfg.args:
        raise ConfigError(f"data.args: only a user's loader ('file.py:function') takes "
                          f"arguments; dataset {cfg.dataset!r} has settings of its own")
    spec = DATASETS.get(cfg.dataset)
    info = spec.info(settings)
    if info.shape is not None and info.sizes:  # a registered dataset is read whole
        check_fits(cfg.dataset, sum(info.sizes.values()), info.shape,
                   "it is read whole: free memory, or choose a smaller variant of it")
    return spec.load(cfg, settings)


def dataset_info(cfg: DataConfig) -> DatasetInfo:
    """Shape, classes and sizes of ``cfg``'s dataset without reading a file, where known."""
    if is_user_ref(cfg.dataset):
        return DatasetInfo(None, None)
    return DATASETS.get(cfg.dataset).info(dataset_settings(cfg))


def locate(cfg: DataConfig) -> Located:
    """Where ``cfg``'s dataset is looked for and found, without reading it."""
    if is_user_ref(cfg.dataset):
        return Located([], None)
    spec = DATASETS.get(cfg.dataset)
    if spec.locate is None:
        return Located([], None)
    return spec.locate(cfg, dataset_settings(cfg))
