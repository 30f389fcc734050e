"""A user's own data: a loader named by a colon, its arguments checked, what it returns
checked in one line per mistake, map-style Datasets materialized for the kept indices."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from convlab.config import DataConfig, load_config
from convlab.data import userdata
from convlab.data.pipeline import prepare_data
from convlab.data.sources import load_raw
from convlab.errors import ConvlabError, DataError


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "decoded-cache"))
    userdata._MEMO.clear()


HEADER = "import numpy as np\nimport torch\n"


def loader(tmp_path: Path, body: str, name: str = "mydata.py") -> str:
    """Write ``def load(...)`` into a file; return the dataset reference."""
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return f"{path}:load"


ARRAYS = """
def load(n: int = 40, layout: str = "nhwc", kind: str = "uint8"):
    rng = np.random.default_rng(0)
    def split(m):
        x = rng.integers(0, 256, (m, 8, 6, 3), dtype=np.uint8)
        y = np.arange(m) % 4
        if layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        if kind == "float":
            x = x / 255.0
        return x, y
    return {"train": split(n), "test": split(n // 2), "classes": ["a", "b", "c", "d"]}
"""


@pytest.mark.parametrize(("layout", "kind"), [("nhwc", "uint8"), ("nchw", "uint8"),
                                              ("nhwc", "float")])
def test_arrays_in_each_layout(tmp_path: Path, layout: str, kind: str) -> None:
    ref = loader(tmp_path, ARRAYS)
    raw = load_raw(DataConfig(dataset=ref, args={"n": 40, "layout": layout, "kind": kind}))
    assert raw.shape == (3, 8, 6) and raw.train.images.dtype == torch.uint8
    assert raw.classes == ["a", "b", "c", "d"] and len(raw.train) == 40 and len(raw.test) == 20
    first = load_raw(DataConfig(dataset=ref, args={"n": 40}))
    assert torch.equal(raw.train.images, first.train.images)  # same pixels in every layout


def test_the_rest_of_the_data_section_applies(tmp_path: Path) -> None:
    ref = loader(tmp_path, ARRAYS)
    cfg = DataConfig(dataset=ref, args={"n": 40}, val_fraction=0.25, subset={"val": 5},
                     permute={"seed": 1}, normalize="channel")
    data = prepare_data(cfg, torch.device("cpu"))
    assert data.sizes == {"train": 30, "val": 5, "test": 20} and data.shape == (3, 8, 6)
    again = prepare_data(cfg, torch.device("cpu"))
    assert data.fingerprint == again.fingerprint


def test_config_file_names_the_loader_and_args(tmp_path: Path) -> None:
    ref = loader(tmp_path, ARRAYS)
    (tmp_path / "e.yaml").write_text(f"data: {{dataset: '{ref}', args: {{n: 12}}}}\n")
    cfg = load_config(tmp_path / "e.yaml")
    assert len(load_raw(cfg.data).train) == 12
    with pytest.raises(ConvlabError, match=r"data.args: unknown key 'nn'; did you mean 'n'"):
        load_raw(DataConfig(dataset=ref, args={"nn": 3}))
    with pytest.raises(Exception, match=r"lable: unknown key for dataset"):
        DataConfig(dataset=ref, lable="x")


@pytest.mark.parametrize(("body", "match"), [
    ("def load():\n    return {'train': (np.zeros((4, 8, 8), np.uint8), [0, 1, 0]),"
     " 'test': (np.zeros((2, 8, 8), np.uint8), [0, 1])}\n", "4 images but 3 labels"),
    ("def load():\n    return {'train': (np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 7]),"
     " 'test': (np.zeros((2, 8, 8), np.uint8), [0, 1]), 'classes': ['a', 'b']}\n",
     r"label 7 out of range 0\.\.1"),
    ("def load():\n    return {'train': (np.zeros((4, 8, 8), np.uint8), [0, 1, 0.5, 1]),"
     " 'test': (np.zeros((2, 8, 8), np.uint8), [0, 1])}\n", "labels are not integers"),
    ("def load():\n    return {'train': (np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 1]),"
     " 'test': (np.zeros((2, 9, 8), np.uint8), [0, 1])}\n", "differ in size"),
    ("def load():\n    return {'train': (np.full((4, 8, 8), 2.0), [0, 1, 0, 1]),"
     " 'test': (np.zeros((2, 8, 8)), [0, 1])}\n", r"must lie in \[0, 1\], these span \[2, 2\]"),
    ("def load():\n    return {'train': (np.zeros((4, 64), np.uint8), [0, 1, 0, 1]),"
     " 'test': (np.zeros((2, 64), np.uint8), [0, 1])}\n", "2-D array .* where images"),
    ("def load():\n    return {'train': ([np.zeros((8, 8)), np.zeros((9, 9))], [0, 1]),"
     " 'test': (np.zeros((2, 8, 8)), [0, 1])}\n", "different sizes"),
    ("def load():\n    return (1, 2)\n", "expected a mapping"),
    ("def load():\n    return {'train': 1}\n", "expected keys train, test"),
    ("def load():\n    raise RuntimeError('no such folder')\n", "RuntimeError: no such folder"),
], ids=["lengths", "label-range", "float-labels", "sizes", "float-range", "2d", "ragged",
        "not-mapping", "keys", "raises"])
def test_mistakes_are_one_line(tmp_path: Path, body: str, match: str) -> None:
    ref = loader(tmp_path, body)
    with pytest.raises(ConvlabError, match=match) as err:
        load_raw(DataConfig(dataset=ref))
    assert "\n" not in str(err.value)


DATASET = """
class Squares(torch.utils.data.Dataset):
    classes = ["dark", "light"]
    def __init__(self, n, log=None):
        self.n, self.log = n, log
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        if self.log is not None:
            self.log.append(i)
        value = 200 if i % 2 else 20
        return torch.full((1, 6, 6), value / 255.0), i % 2  # like ToTensor(): float C x H x W

READ = []

def load(n: int = 30):
    return {"train": Squares(n, READ), "test": Squares(10)}
"""


def test_map_style_dataset_materialized_for_kept_indices_and_cached(tmp_path: Path) -> None:
    ref = loader(tmp_path, DATASET)
    cfg = DataConfig(dataset=ref, args={"n": 30}, subset={"train": 8})
    data = prepare_data(cfg, torch.device("cpu"))
    assert data.sizes == {"train": 8, "val": 0, "test": 10} and data.classes == ["dark", "light"]
    assert data.train.images.dtype == torch.uint8 and data.shape == (1, 6, 6)
    assert set(data.train.images[:, 0, 0, 0].tolist()) <= {20, 200}
    assert (data.train.images[:, 0, 0, 0] == torch.where(data.train.labels == 1, 200, 20)).all()
    import sys

    module = next(m for m in sys.modules.values()
                  if getattr(m, "__file__", None) == str(tmp_path / "mydata.py"))
    assert len(module.READ) == 1 + 8  # sample 0 for the shape, then only the 8 kept
    userdata._MEMO.clear()
    module.READ.clear()
    again = prepare_data(cfg, torch.device("cpu"))
    assert torch.equal(again.train.images, data.train.images)
    assert len(module.READ) == 1  # the 8 came from the cache


def test_memory_estimate_names_subset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = loader(tmp_path, DATASET)
    monkeypatch.setenv("CONVLAB_MEMORY_BYTES", "500")
    with pytest.raises(DataError, match=r"30 images of 1x6x6 need .* available; keep fewer "
                                        r"with data\.subset"):
        prepare_data(DataConfig(dataset=ref, args={"n": 30}), torch.device("cpu"))
    prepare_data(DataConfig(dataset=ref, args={"n": 30}, subset={"train": 5, "test": 5}),
                 torch.device("cpu"))  # 5 x 36 bytes fit


def test_own_val_split(tmp_path: Path) -> None:
    ref = loader(tmp_path, """
def load():
    x = np.zeros((6, 4, 4), np.uint8)
    y = np.array([0, 1] * 3)
    return {"train": (x, y), "val": (x[:2], y[:2]), "test": (x[:4], y[:4])}
""")
    data = prepare_data(DataConfig(dataset=ref), torch.device("cpu"))
    assert data.sizes == {"train": 6, "val": 2, "test": 4}
    with pytest.raises(ConvlabError, match="has a validation split of its own"):
        prepare_data(DataConfig(dataset=ref, val_fraction=0.5), torch.device("cpu"))


def test_sweep_workers_import_the_loader_again(tmp_path: Path) -> None:
    """Two spawned workers, one keyword argument of the loader swept: each trial reads the
    dataset its argument makes, from the file named relative to the experiment."""
    import json
    import subprocess
    import sys

    (tmp_path / "mydata.py").write_text(HEADER + textwrap.dedent(ARRAYS))
    (tmp_path / "exp.yaml").write_text(
        "data: {dataset: 'mydata.py:load', args: {n: 40}}\nmodel: {name: mlp}\n"
        "train: {epochs: 1, batch_size: 16, threads: 1}\n")
    (tmp_path / "sweep.yaml").write_text(
        "name: s\nbase: exp.yaml\ngrid:\n  data.args.n: [24, 32]\n")
    done = subprocess.run([sys.executable, "-m", "convlab.cli", "sweep",
                           str(tmp_path / "sweep.yaml"), "--workers", "2", "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    sizes = sorted(json.loads(p.read_text())["data"]["train"]
                   for p in (tmp_path / "runs").rglob("env.json"))
    assert sizes == [24, 32]


def test_reading_a_dataset_reports_progress_to_the_runner(tmp_path: Path) -> None:
    from convlab.data.imagefolder import decode_progress

    ref = loader(tmp_path, DATASET)
    told: list[tuple[str, int, int]] = []
    with decode_progress(lambda what, done, total: told.append((what, done, total))):
        load_raw(DataConfig(dataset=ref, args={"n": 1100})).train.take(torch.arange(1100))
    assert [d for _, d, _ in told] == [512, 1024, 1100] and told[-1][2] == 1100
    assert "train" in told[0][0]
