"""Parquet files and Hugging Face ``datasets`` folders as ``--data``: columns, labels, splits and pictures as bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frostline.cli import app
from frostline.core.errors import FrostlineError
from frostline.data.columnar import read_parquet, read_saved_splits
from tests.conftest import HAM_WORDS, SPAM_WORDS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")
runner = CliRunner()


def _texts(n: int = 60) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    labels = ["spam" if i % 3 == 0 else "ham" for i in range(n)]
    texts = [" ".join(rng.choice(SPAM_WORDS if y == "spam" else HAM_WORDS, 5)) + f" {i}" for i, y in enumerate(labels)]
    return texts, labels


def test_parquet_reads_only_its_two_columns_and_says_what_it_dropped(tmp_path):
    texts, labels = _texts()
    labels[4] = None
    texts[7] = ""
    pq.write_table(pa.table({"id": list(range(60)), "body": texts, "label": labels,
                             "blob": [b"x" * 1000] * 60}), tmp_path / "d.parquet", row_group_size=16)
    ds = read_parquet(tmp_path / "d.parquet", text_column="body")
    assert ds.kind == "text" and len(ds) == 58 and ds.label_names == ["ham", "spam"]
    assert ds.dropped == {"with an empty or missing text": ["row 7"], "with an empty label": ["row 4"]}
    with pytest.raises(FrostlineError, match=r"no text column 'text'; the columns are \['id', 'body', 'label', "
                                             r"'blob'\]"):
        read_parquet(tmp_path / "d.parquet")
    (tmp_path / "not.parquet").write_text("a,b\n")
    with pytest.raises(FrostlineError, match=r"not\.parquet is not a readable Parquet file"):
        read_parquet(tmp_path / "not.parquet")


def test_a_list_column_is_multilabel_and_numbers_are_regression(tmp_path):
    texts, _ = _texts(30)
    pq.write_table(pa.table({"text": texts, "label": [["a", "b"] if i % 2 else ["b"] for i in range(30)]}),
                   tmp_path / "m.parquet")
    ds = read_parquet(tmp_path / "m.parquet")
    assert ds.task == "multilabel" and ds.label_names == ["a", "b"] and ds.labels.sum() == 45
    pq.write_table(pa.table({"text": texts, "label": [i / 7 for i in range(30)]}), tmp_path / "r.parquet")
    assert read_parquet(tmp_path / "r.parquet").task == "regression"


def _saved(tmp_path: Path) -> Path:
    texts, labels = _texts(90)
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["spam", "ham"])})
    ds = datasets.Dataset.from_dict({"sentence": texts, "label": [0 if y == "spam" else 1 for y in labels]},
                                    features=feats)
    datasets.DatasetDict({"train": ds.select(range(60)), "validation": ds.select(range(60, 75)),
                          "test": ds.select(range(75, 90))}).save_to_disk(str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_a_datasets_folder_gives_its_splits_and_class_names(tmp_path):
    splits = read_saved_splits(_saved(tmp_path))
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "val": 15, "test": 15}
    assert splits["train"].label_names == ["spam", "ham"]  # the ClassLabel's own order


def test_train_uses_a_datasets_folders_own_splits(tmp_path, tiny_hf_dir):
    folder = _saved(tmp_path)
    result = runner.invoke(app, ["train", "--model", f"hf:{tiny_hf_dir}", "--data", str(folder), "--strategy",
                                 "linear-probe", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["data"]["sizes"] == {"train": 60, "val": 15, "test": 15} and m["labels"] == ["spam", "ham"]


def test_pictures_stored_as_bytes_are_a_picture_data_set(tmp_path):
    from PIL import Image

    def png(channel: int) -> bytes:
        a = np.zeros((8, 8, 3), np.uint8)
        a[..., channel] = 200
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "blue"])})
    ds = datasets.Dataset.from_dict({"image": [{"bytes": png(0 if i % 2 else 2), "path": None} for i in range(10)],
                                     "label": [i % 2 for i in range(10)]}, features=feats)
    ds.save_to_disk(str(tmp_path / "pics"))
    ds.to_parquet(str(tmp_path / "pics.parquet"))
    for got in (read_saved_splits(tmp_path / "pics", image_size=16)["train"],
                read_parquet(tmp_path / "pics.parquet", image_size=16)):
        assert got.kind == "image" and tuple(got.inputs.shape) == (10, 3, 16, 16)
        assert got.label_names == ["red", "blue"] and int(got.inputs[1, 0].float().mean()) == 200
