"""Before any strategy trains: the options checked, the data read and split, the model loaded with its new head,
and every split encoded, once for all the runs of a comparison (:class:`Prepared`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.errors import FrostlineError
from ..core.task import Task
from ..data import Dataset, Splits, limit, split
from ..data.augment import parse_augment
from ..data.batching import Encoded
from ..data.leakage import LeakageReport, check_splits, dedup, label_conflicts
from ..data.normalise import ImageInputs
from ..evaluation.metrics import split_metrics
from ..evaluation.threshold import choose_positive
from ..models.heads import find_head, replace_head
from ..models.load import LoadedModel
from ..models.parts import model_parts
from ..training.head_inputs import HeadInputs
from ..training.prediction import predict
from ..training.strategies import parse_strategy
from .config import RunConfig
from .identity import data_hashes, state_hash
from .sources import check_bad_rows, check_forward, load_for_run, read_data, read_main_data, run_inputs, text_length

Progress = Callable[[str, int], Callable[[float], None]]
Status = Callable[[str], AbstractContextManager[Any]]


def no_status(_message: str) -> AbstractContextManager[Any]:
    """The silent status (library use)."""
    return nullcontext()


@dataclass
class Prepared:
    """A model with its new head, and the data encoded for it, shared by the runs of a comparison."""

    loaded: LoadedModel
    splits: Splits
    train: Encoded
    val: Encoded
    test: Encoded
    initial_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    leakage: LeakageReport | None = None
    dedup_dropped: int = 0
    base: dict[str, Any] | None = None
    data_hashes: dict[str, str] = field(default_factory=dict)
    base_hash: str | None = None
    task: Task = field(default_factory=Task)
    precision: dict[str, Any] | None = None  # what the runs train in and why (:mod:`frostline.runs.precision`)
    base_val: Any = None  # the base model's validation predictions in float32 (the precision check reuses them)
    head_inputs: HeadInputs | None = field(default=None, repr=False)  # shared by the scoring passes of this data
    inputs: ImageInputs | None = None  # images: the convention applied (the run's size, the model's normalisation)
    dropped: dict[str, Any] = field(default_factory=dict)  # per data option: rows left out, why, and the warning line

    def reset(self) -> None:
        """Put the starting weights back (every strategy starts from the same model and head)."""
        self.loaded.model.load_state_dict(self.initial_state)

    def base_metrics(self, batch_size: int = 128, status: Status = no_status) -> dict[str, Any]:
        """The model before fine-tuning (pretrained body, fresh head) on validation and test, computed once."""
        if self.base is None:
            self.reset()
            labels, model = self.splits.label_names, self.loaded.model
            with status(f"scoring the base model on {len(self.val) + len(self.test)} validation and test samples"):
                reuse = self.head_inputs
                self.base_val = predict(model, self.val, batch_size, task=self.task, reuse=reuse)
                self.base = {"val": split_metrics(self.base_val, labels, self.task),
                             "test": split_metrics(predict(model, self.test, batch_size, task=self.task,
                                                           reuse=reuse), labels, self.task),
                             "params": {"total": sum(p.numel() for p in model.parameters()), "trainable": 0}}
        return self.base


@dataclass
class SplitData:
    """The run's samples as read and split: ``full`` after ``--dedup`` and ``--limit``, the user's own validation /
    test files (or a datasets folder's splits), and what was left out on the way."""

    full: Dataset
    splits: Splits
    val: Dataset | None
    test: Dataset | None
    bad_rows: dict[str, Any]
    dedup_dropped: int = 0
    conflicts: tuple[int, list[Any]] | None = None  # samples whose copies disagree on the label (before --dedup)


def read_splits(cfg: RunConfig, size: int | None = None, echo: Callable[[str], None] = print) -> SplitData:
    """Read ``--data`` (and ``--val-data`` / ``--test-data``), drop unusable rows, ``--dedup``, ``--limit`` and split:
    the one pipeline both training and ``evaluate``'s overlap check use, so the two can never drift apart.

    Args:
        cfg: The run's configuration.
        size: Images: the square size pictures are read at.
        echo: Where notes go (rows dropped, duplicates dropped, a limit above the data's size).
    """
    full, given = read_main_data(cfg, size)  # given: a datasets folder's own validation / test splits
    names = full.label_names
    val = read_data(cfg.val_data, cfg, names, full.task, size) if cfg.val_data else given.get("val")
    test = read_data(cfg.test_data, cfg, names, full.task, size) if cfg.test_data else given.get("test")
    bad_rows = check_bad_rows(cfg, {"data": full, "val_data": val, "test_data": test}, echo)  # as read
    dropped, conflicts = 0, None
    if cfg.dedup:
        conflicts = label_conflicts(full)  # dedup keeps the first label: say which conflicted
        full, dropped = dedup(full)
        if dropped:
            echo(f"note: --dedup: dropped {dropped} repeated samples (the first copy of each is kept) before splitting")
    if full.task_note:
        echo(f"note: task: {full.task_note}")
    if cfg.max_samples is not None and cfg.max_samples > len(full):
        what = "training samples" if val is not None or test is not None else "samples"
        echo(f"note: --limit {cfg.max_samples} is more than the {len(full)} {what} of {cfg.data}: all of them are "
             "used")
    full = limit(full, cfg.max_samples, cfg.seed)
    splits = split(full, cfg.val_frac, cfg.test_frac, cfg.seed, val, test)
    return SplitData(full, splits, val, test, bad_rows, dropped, conflicts)


def prepare(cfg: RunConfig, loaded: LoadedModel | None = None, status: Status = no_status,
            echo: Callable[[str], None] = print, strategies: list[str] | None = None) -> Prepared:
    """Load the model and data, split, replace the head, and encode every split.

    Options are checked first; ``strategies`` (default ``[cfg.strategy]``) are resolved against the model as soon
    as it is loaded (``partial:9`` on a 6-block model fails before tokenising or scoring anything).
    """
    if cfg.data is None:
        raise FrostlineError("no data given: pass --data FILE (CSV/TSV/JSONL) or an image folder")
    cfg.validate()
    if loaded is None and Path(cfg.data).is_dir():  # pictures are read at the model's input size
        loaded = load_for_run(cfg, status, echo)
    inputs = run_inputs(loaded, cfg) if loaded is not None else None
    size = inputs.size if inputs else None
    with status(f"reading {cfg.data}"):
        data = read_splits(cfg, size, echo)
    full, splits, val, test = data.full, data.splits, data.val, data.test
    names = full.label_names
    task = Task.for_targets(full.task, splits.train.labels, cfg.loss)
    if task.kind == "classification":
        choose_positive(names, splits.train.labels, cfg.positive_label)  # a bad --positive-label fails first
    elif cfg.optimize or cfg.positive_label:
        raise FrostlineError(f"--optimize and --positive-label choose a class's threshold; a {task.kind} task has no "
                             "positive class" + (" (its per-label thresholds are chosen on validation)"
                                                  if task.kind == "multilabel" else ""))
    torch.manual_seed(cfg.seed)  # the new head's initial weights are part of the run's identity
    if loaded is None:
        loaded = load_for_run(cfg, status, echo)
    base_hash = state_hash(loaded.model)  # before the head is replaced: the base the run's changes apply to
    if full.kind == "text" and loaded.tokenizer is None:
        raise FrostlineError(f"{cfg.data} is text but model {cfg.model!r} has no tokenizer; use a text model")
    length = text_length(cfg.max_length, loaded.model, loaded.tokenizer, cfg.model, loaded.max_length)
    if full.kind != "text" and loaded.tokenizer is not None:
        raise FrostlineError(f"{cfg.data} holds images but model {cfg.model!r} is a text model; use an image model: "
                             "--model efficientnet-lite0 (bundled, pretrained on ImageNet), hf:<vision model folder> "
                             "or path/to/file.py:function")
    if full.kind == "image":
        inputs = run_inputs(loaded, cfg)
        assert inputs is not None
        for note in [*full.notes, *(val.notes if val else []), *(test.notes if test else [])]:
            echo(f"note: {note}")
        hint = ("; state yours with model.pretrained_cfg = {'input_size': (3, H, W), 'mean': ..., 'std': ...} in "
                "your factory" if inputs.assumed else "")
        echo(f"note: images: normalised {inputs.formula()} ({inputs.source}{hint})")
        own = loaded.inputs.size if loaded.inputs is not None and not loaded.inputs.assumed else None
        if own and inputs.size * 4 <= own:
            echo(f"warning: --image-size {inputs.size} is a quarter or less of the {own} px the model was "
                 f"pretrained at: a CNN that downsamples 32x leaves about {max(inputs.size // 32, 1)} feature "
                 f"position(s) per side, and its pretrained features carry little at this size; use 64 or more")
    else:
        inputs = None
    torch.manual_seed(cfg.seed)
    loaded.head = replace_head(loaded.model, task.outputs(names), labels=None if task.kind == "regression" else names,
                               dropout=cfg.dropout, problem_type=task.problem_type)
    parts = model_parts(loaded.model)
    for spec in strategies if strategies is not None else [cfg.strategy]:
        checked = parse_strategy(spec, loaded.model)
        if checked.ready:  # automatic strategies plan once they have scored the model (in train)
            checked.plan(0, parts, cfg.body_lr(), cfg.head_lr)
    augment = parse_augment(cfg.augment)
    what = "tokenising" if full.kind == "text" else "preparing"
    with status(f"{what} {len(splits.train) + len(splits.val) + len(splits.test)} samples"):
        enc = [Encoded(s, loaded.tokenizer, length, augment if s is splits.train else None, inputs)
               for s in (splits.train, splits.val, splits.test)]
    cut = sum(e.truncated for e in enc)
    if cut:
        own = " (where the model's own sentence pipeline truncates)" if loaded.max_length == length else ""
        echo(f"note: {cut} of {sum(len(e) for e in enc)} texts were cut to {length} tokens{own}; --max-length sets "
             "another length")
    check_forward(loaded.model, enc[0], cfg.model)
    state = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    with status("checking the splits for leakage"):
        leak = check_splits(splits, source=full if val is None and test is None else None)
    if data.conflicts is not None and data.conflicts[0]:
        leak.conflicting, leak.conflict_examples, leak.conflicts_deduped = data.conflicts[0], data.conflicts[1], True
    with status("hashing the data files"):
        hashes = data_hashes(data_paths(cfg))
    return Prepared(loaded, splits, *enc, initial_state=state, leakage=leak, dedup_dropped=data.dedup_dropped,
                    dropped=data.bad_rows,
                    data_hashes=hashes, base_hash=base_hash, task=task,
                    head_inputs=HeadInputs(loaded.model, find_head(loaded.model).name), inputs=inputs)



def data_paths(cfg: RunConfig) -> dict[str, str | None]:
    """The run's data files by option (``data``, ``val_data``, ``test_data``), for their content hashes."""
    return {"data": cfg.data, "val_data": cfg.val_data, "test_data": cfg.test_data}
