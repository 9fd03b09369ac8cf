"""Data loading, label order, stratified splits, batching with dynamic padding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import frostline as fl
from frostline.data import from_tensors, limit, read_image_folder, read_table, split
from frostline.data.batching import SNUG_GROWTH, SNUG_SLACK, Encoded, snug_batches
from tests.conftest import make_image_folder, make_text_file


def test_headerless_tsv_by_column_number(tmp_path):
    path = make_text_file(tmp_path / "x.tsv", n=50)
    ds = read_table(path, text_column="1", label_column="0")
    assert len(ds) == 50 and ds.label_names == ["ham", "spam"] and ds.kind == "text"
    assert list(ds.ids[:3]) == [0, 1, 2]


def test_header_by_name_and_quotes_kept_in_tsv(tmp_path):
    p = tmp_path / "h.tsv"
    p.write_text('Label\tSMS\nham\tsay "hi" now\nspam\twin "cash"\n\nham\n')
    ds = read_table(p, text_column="SMS", label_column="Label")
    assert ds.inputs == ['say "hi" now', 'win "cash"'] and ds.skipped == 1


def test_csv_with_quoting_and_numeric_labels(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('text,label\n"a, b",1\nc,0\nd,10\n')
    ds = read_table(p)
    assert ds.inputs[0] == "a, b" and ds.label_names == ["0", "1", "10"]  # numeric order, not string order


def test_jsonl(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps({"review": t, "y": y}) for t, y in [("good", "pos"), ("bad", "neg")]))
    ds = read_table(p, text_column="review", label_column="y")
    assert ds.label_names == ["neg", "pos"] and list(ds.labels) == [1, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "nope.csv"}, r"data file 'nope.csv' does not exist"),
        ({"text_column": "SMSS", "label_column": "Label"}, r"no text column 'SMSS'.*closest names: SMS"),
        ({"text_column": "SMS", "label_column": "Label", "header": False}, r"is a name but the file has no header"),
    ],
)
def test_table_errors(tmp_path, kwargs, match):
    p = tmp_path / "h.tsv"
    p.write_text("Label\tSMS\nham\thi\nspam\twin\n")
    kwargs.setdefault("path", p)
    with pytest.raises(fl.FrostlineError, match=match):
        read_table(**kwargs)


def test_unknown_label_against_fixed_order(tmp_path):
    p = make_text_file(tmp_path / "x.tsv", n=20)
    with pytest.raises(fl.FrostlineError, match=r"labels \['spam'\] are not among the training labels \['ham'\]"):
        read_table(p, "1", "0", label_names=["ham"])


def test_single_class_is_an_error(tmp_path):
    p = tmp_path / "one.tsv"
    p.write_text("ham\ta\nham\tb\n")
    with pytest.raises(fl.FrostlineError, match="only one class"):
        read_table(p, "1", "0")


def test_stratified_split_is_seeded_and_disjoint(tmp_path):
    ds = read_table(make_text_file(tmp_path / "x.tsv", n=200), "1", "0")
    a, b = split(ds, 0.2, 0.2, seed=3), split(ds, 0.2, 0.2, seed=3)
    assert np.array_equal(a.train.ids, b.train.ids) and np.array_equal(a.test.ids, b.test.ids)
    ids = [set(s.ids) for s in (a.train, a.val, a.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == 200 and a.sizes() == {"train": 120, "val": 40, "test": 40}
    share = ds.labels.mean()
    for s in (a.train, a.val, a.test):  # stratified: the minority share is kept in every split
        assert abs(s.labels.mean() - share) < 0.03
    assert not np.array_equal(split(ds, 0.2, 0.2, seed=4).test.ids, a.test.ids)


def test_limit_is_stratified(tmp_path):
    ds = read_table(make_text_file(tmp_path / "x.tsv", n=300), "1", "0")
    small = limit(ds, 100, seed=0)
    assert len(small) == 100 and abs(small.labels.mean() - ds.labels.mean()) < 0.02
    with pytest.raises(fl.FrostlineError, match="--limit 3 is too small for 2 classes"):
        limit(ds, 3)


def test_image_folder(tmp_path):
    ds = read_image_folder(make_image_folder(tmp_path / "imgs", per_class=4), image_size=8)
    assert ds.kind == "image" and ds.inputs.shape == (8, 3, 8, 8) and ds.inputs.dtype == torch.uint8
    assert ds.label_names == ["blue", "red"] and ds.keys[0].endswith("0.png")
    batch = Encoded(ds).batch(np.array([0, 5]))
    assert batch.inputs.dtype == torch.float32 and batch.labels.tolist() == [0, 1]


def test_from_tensors_errors():
    with pytest.raises(fl.FrostlineError, match="x has 3 samples but y has 2 labels"):
        from_tensors(torch.zeros(3, 2), [0, 1])


def test_dynamic_padding_and_bucketing(tiny_hf_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_hf_dir)
    ds = read_table(make_text_file(tmp_path / "x.tsv", n=64), "1", "0")
    enc = Encoded(ds, tok, max_length=20)
    assert max(enc.lengths) <= 20 and min(enc.lengths) < 8
    batches = enc.plan_batches(8, shuffle=False)
    widths = [enc.batch(b).inputs["input_ids"].shape[1] for b in batches]
    longest = [max(enc.lengths[b]) for b in batches]
    # padded to each batch's longest rounded up to a multiple of 8 (at most max_length), not to max_length
    assert widths == [min(-(-n // 8) * 8, 20) for n in longest] and widths[0] < 20
    short = Encoded(ds, tok, max_length=5)
    assert {short.batch(b).inputs["input_ids"].shape[1] for b in short.plan_batches(8)} <= {5}  # capped: 5, not 8
    b = enc.batch(batches[0])
    assert torch.equal(b.inputs["attention_mask"].sum(1), torch.tensor([enc.lengths[i] for i in batches[0]]))
    shuffled = enc.plan_batches(8, shuffle=True, seed=1, epoch=0)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(64))
    assert [x.tolist() for x in shuffled] == [x.tolist() for x in enc.plan_batches(8, True, 1, 0)]
    assert [x.tolist() for x in shuffled] != [x.tolist() for x in enc.plan_batches(8, True, 1, 1)]


def test_snug_batches_pad_little_and_keep_every_sample():
    lengths = np.array([3, 60, 5, 4, 30, 61, 6, 100, 3, 29])
    order = np.argsort(lengths, kind="stable")
    batches = snug_batches(lengths, order, batch_size=4)
    assert np.array_equal(np.concatenate(batches), order)  # every sample once, in length order
    # a batch pads to at most 1.5x its shortest + 8 tokens, and holds at most batch_size samples
    assert [lengths[b].tolist() for b in batches] == [[3, 3, 4, 5], [6], [29, 30], [60, 61], [100]]
    assert all(lengths[b].max() <= SNUG_GROWTH * lengths[b].min() + SNUG_SLACK and len(b) <= 4 for b in batches)
    assert snug_batches(np.zeros(0, int), np.zeros(0, int), 4) == []
    one = snug_batches(np.array([7] * 10), np.arange(10), 4)
    assert [len(b) for b in one] == [4, 4, 2]  # equal lengths: only the batch size cuts
