"""Export a finished run as a standalone model: loadable without frostline.

* A Hugging Face ``*ForSequenceClassification`` / ``*ForImageClassification`` model: ``save_pretrained`` (safetensors,
  config with the class names, tokenizer); ``AutoModelFor...Classification.from_pretrained(folder)`` gives the run's
  predictions.
* A text encoder with frostline's pooling (``--pooling mean`` ...): ``encoder/`` with the encoder and tokenizer via
  ``save_pretrained`` (``AutoModel``, without the pooler the head does not use), ``classifier.safetensors``
  (``weight``, ``bias``) and ``head.json`` (pooling and class names); ``README.md`` holds the dozen lines of plain
  transformers that apply them. The export folder itself has no ``config.json``: loading it with
  ``AutoModelForSequenceClassification`` fails instead of giving a random head.
* An image model: ``model.safetensors``, ``head.json`` with the preprocessing (size, normalisation) and the new
  head, and ``README.md``: plain PyTorch + PIL that builds the model, loads the weights and prepares a picture
  (:mod:`frostline.runs.export_images`; the recipe itself is run before the export is kept).
* Any other model: ``model.safetensors`` with every tensor and ``head.json``; the architecture is your own code.

A run with PEFT adapters (``lora``, ``ia3``) is exported merged (PEFT's ``merge_and_unload``): the same architecture
as its base model, the adapters folded into the weights. Each export is checked before it is kept: reloaded the
documented way, it must give the run's logits (with the adapters as trained, unmerged).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..core.atomic import umask_mode
from ..core.errors import FrostlineError
from ..core.lock import folder_lock
from ..models.heads import find_head
from ..models.pooling import PooledTextClassifier
from .export_images import check_recipe, image_meta, is_image_run, recipe
from .folder import check_out
from .inference import RunModel, load_run
from .preparation import Status, no_status

POOLED_USAGE = '''# Using this model with plain transformers

```python
import json, torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = "{folder}"  # encoder/ is the encoder alone; the head below sits on its pooled output
tokenizer = AutoTokenizer.from_pretrained(f"{{folder}}/encoder")
encoder = AutoModel.from_pretrained(f"{{folder}}/encoder"{encoder_kwargs}).eval()
head, meta = load_file(f"{{folder}}/classifier.safetensors"), json.load(open(f"{{folder}}/head.json"))
batch = tokenizer(["your text"], padding=True, truncation=True, max_length=meta["max_length"], return_tensors="pt")
with torch.no_grad():
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = {{"mean": (hidden * mask).sum(1) / mask.sum(1).clamp(min=1), "cls": hidden[:, 0],
              "max": hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values}}[meta["pooling"]]
    for step in meta["steps"]:  # the sentence-transformers modules after the pooling, in order
        if step["step"] == "dense":
            dense = load_file(f"{{folder}}/{{step['path']}}.safetensors")
            act = {{"identity": lambda v: v, "gelu": torch.nn.functional.gelu}}.get(step["activation"])
            pooled = (act or getattr(torch, step["activation"]))(pooled @ dense["weight"].T + dense.get("bias", 0))
        elif step["step"] == "normalize":
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
    logits = pooled @ head["weight"].T + head["bias"]
{read}
```
'''
#: the last lines of the recipe, per task
READ_OUTPUTS = {
    "classification": 'probs = torch.softmax(logits, dim=-1)\nprint([meta["labels"][i] for i in probs.argmax(-1)])',
    "regression": 'print(logits[:, 0].tolist())  # the value, in the target\'s units',
    "multilabel": ('thresholds = torch.tensor(meta["label_thresholds"] or [0.5] * len(meta["labels"]))\n'
                   'print([[n for n, on in zip(meta["labels"], row) if on] for row in torch.sigmoid(logits) >= '
                   'thresholds])'),
}


def _sample(runm: RunModel) -> dict[str, torch.Tensor] | torch.Tensor:
    if runm.tokenizer is not None:
        return dict(runm.tokenizer(["a short check sentence", "another one, a little longer than the first"],
                                   padding=True, truncation=True, max_length=runm.max_length, return_tensors="pt"))
    size = runm.inputs.size
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def _logits(model: nn.Module, x: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    from ..models.outputs import logits_of

    with torch.no_grad():
        return logits_of(model(**x) if isinstance(x, dict) else model(x)).float()


def _pooled_logits(folder: Path, x: dict[str, torch.Tensor]) -> torch.Tensor:
    """The README's recipe, run on the exported files."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    meta = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    encoder = AutoModel.from_pretrained(folder / "encoder", **meta["encoder_kwargs"]).eval()
    head = load_file(str(folder / "classifier.safetensors"))
    meta = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    with torch.no_grad():
        hidden = encoder(**x).last_hidden_state
        mask = x["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = {"mean": lambda: (hidden * mask).sum(1) / mask.sum(1).clamp(min=1), "cls": lambda: hidden[:, 0],
                  "max": lambda: hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values,
                  }[meta["pooling"]]()
        for step in meta["steps"]:
            if step["step"] == "dense":
                dense = load_file(str(folder / f"{step['path']}.safetensors"))
                act = {"identity": lambda v: v, "gelu": torch.nn.functional.gelu}.get(step["activation"])
                pooled = (act or getattr(torch, step["activation"]))(pooled @ dense["weight"].T + dense.get("bias", 0))
            elif step["step"] == "normalize":
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled @ head["weight"].T + head["bias"]


def _encoder_only(config: Path) -> None:
    """The encoder's config says nothing of a head it does not hold (its head is classifier.safetensors on frostline's
    pooling): no problem_type or labels that would make AutoModelForSequenceClassification look like the way in."""
    d = json.loads(config.read_text(encoding="utf-8"))
    for key in ("problem_type", "id2label", "label2id", "num_labels"):
        d.pop(key, None)
    config.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")


def _write(runm: RunModel, tmp: Path, final: Path, base_model: str | None = None) -> tuple[str, Any]:
    """Write the export into ``tmp``; returns its kind and a function giving the reloaded model's logits."""
    model, labels = runm.model, runm.label_names
    meta: dict[str, Any] = {"labels": labels, "max_length": runm.max_length if runm.tokenizer else None,
                            "run": str(runm.path), "threshold": runm.threshold, "task": runm.task.kind,
                            "outputs": {"classification": "logits: softmax gives class probabilities",
                                        "regression": "the value, in the target's units",
                                        "multilabel": "logits: sigmoid gives each label's probability, compared "
                                                      "with label_thresholds"}[runm.task.kind],
                            "label_thresholds": runm.label_thresholds}
    if hasattr(model, "save_pretrained") and hasattr(model, "config"):
        from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {n: i for i, n in enumerate(labels)}
        model.save_pretrained(tmp, safe_serialization=True)
        if runm.tokenizer is not None:
            runm.tokenizer.save_pretrained(tmp)
        (tmp / "head.json").write_text(json.dumps({**meta, "pooling": "native"}, indent=2), encoding="utf-8")
        auto = AutoModelForSequenceClassification if runm.tokenizer is not None else AutoModelForImageClassification
        return "transformers", lambda x: _logits(auto.from_pretrained(tmp).eval(), x)
    if isinstance(model, PooledTextClassifier) and model.pooling.mode != "pooler":
        # encoder/ holds the encoder: AutoModelForSequenceClassification on the export folder fails loudly (no
        # config.json there) instead of putting a random head on it; without the pooler frostline dropped
        # (unused), loaded with add_pooling_layer=False where the class takes it, so transformers warns of nothing
        model.encoder.save_pretrained(tmp / "encoder", safe_serialization=True)
        _encoder_only(tmp / "encoder" / "config.json")
        runm.tokenizer.save_pretrained(tmp / "encoder")
        no_pooler = getattr(model.encoder, "pooler", True) is None and "add_pooling_layer" in \
            inspect.signature(type(model.encoder).__init__).parameters
        meta["encoder_kwargs"] = {"add_pooling_layer": False} if no_pooler else {}
        save_file({"weight": model.classifier.weight.detach().contiguous(),
                   "bias": model.classifier.bias.detach().contiguous()}, str(tmp / "classifier.safetensors"))
        steps = list((runm.state.get("model") or {}).get("pooling", {}).get("steps") or [])
        sentence = getattr(model, "sentence", None)
        for step, module in zip([s for s in steps if s["step"] == "dense"],
                                [m for m in (sentence or []) if hasattr(m, "linear")], strict=True):
            save_file({k: v.detach().contiguous() for k, v in module.linear.state_dict().items()},
                      str(tmp / f"{step['path']}.safetensors"))
        (tmp / "head.json").write_text(json.dumps({**meta, "pooling": model.pooling.mode, "steps": steps}, indent=2),
                                       encoding="utf-8")
        kwargs = ", add_pooling_layer=False" if meta["encoder_kwargs"] else ""
        (tmp / "README.md").write_text(POOLED_USAGE.format(folder=final.resolve(), read=READ_OUTPUTS[runm.task.kind],
                                                           encoder_kwargs=kwargs), encoding="utf-8")
        return "transformers encoder + head", lambda x: _pooled_logits(tmp, x)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    images = is_image_run(runm)
    (tmp / "head.json").write_text(json.dumps({**meta, **(image_meta(runm) if images else {})}, indent=2),
                                   encoding="utf-8")
    if images:
        readme = recipe(runm, final, READ_OUTPUTS[runm.task.kind])
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        check_recipe(runm, tmp, final, readme, base_model)

    def reload(x: Any) -> torch.Tensor:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(tmp / "model.safetensors")))
        return _logits(model, x)

    kind = "state dict + preprocessing and a plain-PyTorch recipe (README.md)" if images else \
        "state dict (your model's code builds the architecture)"
    return kind, reload


def export_run(run: str | Path, dest: str | Path, model: str | None = None, status: Status = no_status) -> str:
    """Write a finished run's best model to ``dest`` (a new folder) as a standalone model; returns its kind.

    Args:
        run: The run folder.
        dest: The export folder (must be new or empty).
        model: Model spec, for runs built by ``module:function``.
        status: Status-line context for the slow steps.
    """
    out = check_out(dest, "export")
    with folder_lock(out, "exports a run"):
        return _export(run, out, model, status)


def _export(run: str | Path, out: Path, model: str | None, status: Status) -> str:
    """:func:`export_run` with ``out`` held (made empty, replaced by the finished export)."""
    runm = load_run(run, model, status)
    x = _sample(runm)
    task = runm.task
    if task.kind == "regression":  # the head learned standardised targets: fold the scaling in, export user units
        with torch.no_grad():
            expected_units = task.transform(_logits(runm.model, x))
            linear = runm.model.get_submodule(find_head(runm.model).linear)
            linear.weight.mul_(task.std)
            if linear.bias is not None:
                linear.bias.mul_(task.std).add_(task.mean)
    expected = _logits(runm.model, x)
    if runm.adapters is not None:  # PEFT's merge_and_unload: the export is the plain architecture, adapters folded in
        runm.adapters.merge()
    if task.kind == "regression" and not torch.allclose(expected, expected_units, atol=1e-4, rtol=1e-4):
        raise FrostlineError("folding the target's mean and standard deviation into the head changed its outputs; "
                             "export not written")  # pragma: no cover (a head that is not one Linear)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with status(f"exporting to {out}"):
            kind, reloaded = _write(runm, tmp, out, model)
            got = reloaded(x)
        if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
            raise FrostlineError(f"the exported model does not reproduce the run's outputs (max difference "
                                 f"{(got - expected).abs().max().item():.3g}); export not written")
        for file in tmp.rglob("*"):  # safetensors and transformers write 0600 files: readable like any file
            if file.is_file():
                os.chmod(file, umask_mode())
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return kind
