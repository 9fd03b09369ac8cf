"""Where a run's inputs come from: its data files and image folders, the model and the input convention it applies,
the text length, and the record of how the model was built."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import FrostlineError
from ..data import Dataset, read_image_folder, read_table
from ..data.batching import Encoded
from ..data.columnar import is_saved_dataset, read_parquet, read_saved_splits
from ..data.dataset import dropped_summary
from ..data.normalise import DEFAULT_SIZE, ImageInputs
from ..models.load import LoadedModel, load_model
from ..training.distributed import Dist, launch
from ..training.fabric import resolve_device
from ..training.prediction import forward
from .config import RunConfig

Status = Callable[[str], AbstractContextManager[Any]]


def read_data(path: str, cfg: RunConfig, label_names: list[str] | None = None, task: str | None = None,
              image_size: int | None = None) -> Dataset:
    """Read a data file (text table) or folder (images) as ``cfg`` says (``task``: the main data's, for the
    validation and test files; ``image_size``: the run's, default ``cfg.image_size`` or 224)."""
    p = Path(path)
    task = task or cfg.task
    size = image_size or cfg.image_size or DEFAULT_SIZE
    text_column, label_column = _column(cfg.text_column), _column(cfg.label_column)
    if is_saved_dataset(p):  # a datasets folder: its train split (prepare takes its other splits: read_main_data)
        return _relabel(read_saved_splits(p, text_column, label_column, size, task)["train"], label_names)
    if p.suffix.lower() == ".parquet":
        return read_parquet(p, text_column, label_column, size, task, label_names)
    if p.is_dir():
        if task not in (None, "auto", "classification"):
            raise FrostlineError(f"{path} is an image folder (one sub-folder per class): a classification, not a "
                                 f"{task}; use a table (CSV/TSV/JSONL) for --task {task}")
        return read_image_folder(p, size, label_names)
    return read_table(p, cfg.text_column, cfg.label_column, cfg.header, label_names, task, cfg.delimiter)


#: Tokens per text unless ``--max-length`` says otherwise (or the model accepts fewer).
DEFAULT_MAX_LENGTH = 128


def max_positions(model: torch.nn.Module, tokenizer: Any) -> int | None:
    """The longest sequence a text model accepts (its position embeddings / the tokenizer's own limit)."""
    limits = [getattr(getattr(model, "config", None), "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    return min(usable) if usable else None


def text_length(max_length: int | None, model: torch.nn.Module, tokenizer: Any, spec: str = "the model",
                own: int | None = None) -> int:
    """The truncation length of a run: ``max_length`` if the model accepts it (else an error), by default the
    sentence-transformers folder's ``max_seq_length`` (``own``, what ``encode`` truncates at), else 128; never more
    than the model's own limit."""
    limit = max_positions(model, tokenizer) if tokenizer is not None else None
    if max_length is None:
        default = own or DEFAULT_MAX_LENGTH
        return min(default, limit) if limit else default
    if limit is not None and max_length > limit:
        raise FrostlineError(f"--max-length {max_length} is more than {spec!r} accepts ({limit} tokens); use "
                             f"--max-length {limit} or less")
    return max_length


def model_record(loaded: LoadedModel, inputs: ImageInputs | None = None) -> dict[str, Any]:
    """How the model was built, for state.json / metrics.json (the model is rebuilt from this, never from code a
    run folder names: a ``module:function`` model needs ``--model`` again, see :mod:`frostline.runs.inference`).

    ``inputs`` is an image run's convention as applied (the run's size); ``model_size`` the model's own."""
    record = {"spec": loaded.spec, "source": loaded.source, "source_file": loaded.source_file,
              "pooling": loaded.pooling.to_dict() if loaded.pooling else None, "notes": loaded.notes,
              "max_seq_length": loaded.max_length}
    if inputs is not None:
        record["inputs"] = {**inputs.to_dict(), "model_size": loaded.inputs.size if loaded.inputs else None}
    return record


def run_inputs(loaded: LoadedModel, cfg: RunConfig) -> ImageInputs | None:
    """The input convention an image run applies: the model's normalisation at ``--image-size`` (default: the
    model's own size)."""
    if loaded.inputs is None:
        return None
    return replace(loaded.inputs, size=cfg.image_size or loaded.inputs.size)


def load_for_run(cfg: RunConfig, status: Status, echo: Callable[[str], None]) -> LoadedModel:
    with status(f"loading model {cfg.model}"):
        loaded = load_model(cfg.model, pooling=cfg.pooling)
    for note in loaded.notes:
        echo(f"note: {note}")
    return loaded


def misclassified_pictures(prepared: Any, pred: Any) -> dict[str, Any] | None:
    """The misclassified test pictures of an image classification, for the report."""
    test = prepared.splits.test
    if test.kind != "image" or prepared.task.kind != "classification":
        return None
    from ..reporting.pictures import misclassified  # matplotlib loads with a report, not with every run module

    return misclassified(test.inputs, pred.probs, pred.labels, pred.positions, prepared.splits.label_names)


def check_forward(model: torch.nn.Module, enc: Encoded, spec: str) -> None:
    """Run ``model`` once on two prepared samples (eval mode, no gradient: nothing changes), so a model that cannot
    take this data fails here with one clear error instead of a traceback from inside its forward."""
    batch = next(iter(enc.batches(2)), None)
    if batch is None:
        return
    inputs = batch.inputs
    shape = (", ".join(f"{k} {tuple(v.shape)}" for k, v in inputs.items()) if isinstance(inputs, dict)
             else f"a tensor {tuple(inputs.shape)}")
    what = {"text": "texts", "image": "pictures"}.get(enc.ds.kind, "tensors")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            forward(model, inputs)
    except FrostlineError:
        raise
    except Exception as exc:  # the user's model: any error it raises is theirs to read, in one line
        first = (str(exc).splitlines() or [""])[0][:200]
        raise FrostlineError(f"model {spec!r} fails on a batch of {what} ({shape}): {type(exc).__name__}: {first}; "
                             f"is it a model for {what}?") from None
    finally:
        model.train(was)


def check_bad_rows(cfg: RunConfig, data: dict[str, Dataset | None], echo: Callable[[str], None]) -> dict[str, Any]:
    """Rows the data files could not give (empty text or label, NaN target, unreadable picture): a warning line
    for each file (``--on-bad-rows skip``) or one error (``error``); returns them per option for metrics.json."""
    out: dict[str, Any] = {}
    for key, ds in data.items():
        line = dropped_summary(ds) if ds is not None else None
        if line is None:
            continue
        if cfg.on_bad_rows == "error":
            raise FrostlineError(f"--on-bad-rows error: {line}; fix those rows, or pass --on-bad-rows skip to drop "
                                 "them")
        echo(f"warning: {line}; --on-bad-rows error stops instead")
        assert ds is not None
        out[key] = {"source": ds.source, "line": line, "reasons": ds.dropped}
    return out


def _relabel(ds: Dataset, label_names: list[str] | None) -> Dataset:
    """A split read on its own, encoded with the training data's label order (validation and test files)."""
    if label_names is None or ds.label_names == label_names or ds.task != "classification":
        return ds
    unknown = sorted(set(ds.label_names) - set(label_names))
    if unknown:
        raise FrostlineError(f"{ds.source}: labels {unknown[:5]} are not among the training labels {label_names[:20]}")
    index = [label_names.index(n) for n in ds.label_names]
    return replace(ds, labels=np.asarray(index, dtype=np.int64)[ds.labels], label_names=list(label_names))


def read_main_data(cfg: RunConfig, image_size: int | None) -> tuple[Dataset, dict[str, Dataset]]:
    """``--data`` as read, and, for a ``datasets`` folder, its own ``val`` / ``test`` splits (read once, with the
    training split's label order; used unless ``--val-data`` / ``--test-data`` are given)."""
    assert cfg.data is not None
    p = Path(cfg.data)
    if not is_saved_dataset(p):
        return read_data(cfg.data, cfg, image_size=image_size), {}
    parts = read_saved_splits(p, _column(cfg.text_column), _column(cfg.label_column),
                              image_size or cfg.image_size or DEFAULT_SIZE, cfg.task)
    return parts["train"], {k: v for k, v in parts.items() if k != "train"}


def _column(spec: str | int | None) -> str | None:
    return None if spec is None else str(spec)


def start_processes(cfg: RunConfig) -> Dist | None:
    """Launch (or join) the processes of a distributed run (``cfg.devices`` x ``cfg.num_nodes``); ``None`` for one.

    Local processes are started here, by running the same command again; under ``torchrun`` / ``fabric run``
    every process is started by them and joins.
    """
    accelerator, precision = resolve_device(cfg.accelerator, cfg.precision)
    return launch(accelerator, cfg.devices, cfg.num_nodes, cfg.distributed, precision)
