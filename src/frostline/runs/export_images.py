"""The export of an image run: weights, the preprocessing that goes with them, and a plain-PyTorch recipe.

A CNN's weights alone do not reproduce its predictions: the pictures must be prepared as in training (RGB, the
run's square size, the model's normalisation). ``head.json`` carries that (``image``) and ``README.md`` a recipe of
plain PyTorch + PIL that builds the model, puts the run's head on it, loads ``model.safetensors`` and prepares a
picture. Before the export is kept, the recipe itself is run on sample pictures (greyscale, not square) and must give
the run's own probabilities.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import FrostlineError
from ..data import image_tensor
from ..data.batching import Encoded
from ..data.dataset import Dataset
from ..models.efficientnet import BUNDLED_CNNS, CODE_REQUIREMENT
from ..models.heads import find_head
from ..models.load import load_model
from ..training.prediction import predict
from .inference import RunModel

RECIPE = '''# Using this model with plain PyTorch

{about}

```python
import json
import numpy as np, torch
from PIL import Image
from safetensors.torch import load_file

folder = "{folder}"
meta = json.load(open(f"{{folder}}/head.json"))
{build}
# the run's new head: {head_note}
parent, _, name = meta["head"]["module"].rpartition(".")
head = torch.nn.Linear(meta["head"]["in_features"], meta["head"]["outputs"])
if meta["head"]["dropout"] is not None:
    head = torch.nn.Sequential(torch.nn.Dropout(meta["head"]["dropout"]), head)
setattr(model.get_submodule(parent) if parent else model, name, head)
model.load_state_dict(load_file(f"{{folder}}/model.safetensors"))
model.eval()

image = meta["image"]  # how the run prepared pictures: RGB, a square of image["size"] px, (x - mean) / std
mean, std = torch.tensor(image["mean"]).view(3, 1, 1), torch.tensor(image["std"]).view(3, 1, 1)


def prepare(picture):
    rgb = picture.convert("RGB").resize((image["size"], image["size"]), Image.BILINEAR)
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255
    return (x - mean) / std


pictures = [Image.open(path) for path in ["your_picture.png"]]
with torch.no_grad():
    logits = model(torch.stack([prepare(p) for p in pictures]))
{read}
```
'''

BUILD_BUNDLED = '''from efficientnet_lite_pytorch import EfficientNet  # pip install --no-deps {code}

model = EfficientNet.from_name("{name}", image_size=None)  # the architecture; its ImageNet head is replaced below'''
BUILD_FACTORY = '''model = build_your_model()  # the function that built the run's base model: {spec}'''


def image_meta(runm: RunModel) -> dict[str, Any]:
    """``head.json``'s ``image`` and ``head`` sections: the preprocessing and where the new head goes."""
    inputs = runm.inputs
    info = find_head(runm.model)
    module = info.linear[:-2] if info.dropout is not None and info.linear.endswith(".1") else info.linear
    return {"image": {"size": inputs.size, "mean": list(inputs.mean), "std": list(inputs.std),
                      "normalisation": inputs.formula(), "source": inputs.source,
                      "resize": "PIL bilinear to a square (size x size); pictures that are not square are stretched",
                      "channels": "RGB: a greyscale picture's grey level repeated in 3 channels, alpha dropped",
                      "model_size": (runm.state.get("model") or {}).get("inputs", {}).get("model_size")},
            "head": {"module": module, "in_features": info.in_features, "outputs": info.num_classes,
                     "dropout": info.dropout}}


def recipe(runm: RunModel, folder: Path, read: str) -> str:
    """The export's README: plain PyTorch that reproduces the run's predictions."""
    spec = runm.config.model
    if spec in BUNDLED_CNNS:
        build = BUILD_BUNDLED.format(code=CODE_REQUIREMENT, name=spec)
        about = (f"The run fine-tuned `{spec}` (EfficientNet-Lite, ImageNet weights; model code from the pip package "
                 f"`{CODE_REQUIREMENT}`, Apache-2.0).")
    else:
        build = BUILD_FACTORY.format(spec=spec)
        about = (f"The run's base model was built by `{spec}`: define `build_your_model()` to return that model "
                 "(its own head is replaced below).")
    info = find_head(runm.model)
    note = f"`{info.name}`, Linear {info.in_features} -> {info.num_classes}"
    return RECIPE.format(about=about, folder=folder.resolve(), build=build, head_note=note, read=read)


def sample_pictures() -> list[Any]:
    """Pictures the check runs the recipe on: greyscale and colour, not square, not the run's size."""
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = Image.fromarray(rng.integers(0, 256, (29, 37), dtype=np.uint8), mode="L")
    colour = Image.fromarray(rng.integers(0, 256, (41, 23, 3), dtype=np.uint8), mode="RGB")
    return [grey, colour]


def run_probs(runm: RunModel, pictures: list[Any]) -> np.ndarray:
    """The run's own outputs on ``pictures``, through frostline's reading and normalisation."""
    x = torch.stack([image_tensor(p, runm.inputs.size) for p in pictures])
    ds = runm.unlabelled(Dataset("image", x, np.zeros(len(x), np.int64), runm.label_names, np.arange(len(x))))
    return predict(runm.model, Encoded(ds, image_inputs=runm.inputs), 8, task=runm.task).probs


def check_recipe(runm: RunModel, folder: Path, final: Path, readme: str, base_model: str | None) -> None:
    """Run the README's recipe (written for ``final``) on the files in ``folder``, on sample pictures: its
    probabilities must equal the run's, else nothing is exported."""
    from PIL import Image

    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace(f'"{final.resolve()}"', repr(str(folder)))
    pictures = sample_pictures()
    paths = []
    for i, p in enumerate(pictures):
        paths.append(folder / f".check-{i}.png")
        p.save(paths[-1])
    code = code.replace('["your_picture.png"]', repr([str(p) for p in paths]))
    namespace: dict[str, Any] = {"Image": Image}
    if runm.config.model not in BUNDLED_CNNS:
        base = load_model(base_model or runm.config.model).model  # the user's function, given again: a fresh base
        namespace["build_your_model"] = lambda: copy.deepcopy(base)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the recipe prints its predictions: not to the user here
            exec(compile(code, "README.md", "exec"), namespace)
    finally:
        for p in paths:
            p.unlink(missing_ok=True)
    got = torch.softmax(namespace["logits"].float(), -1).numpy()
    expected = run_probs(runm, pictures)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4):
        raise FrostlineError(f"the export's recipe does not reproduce the run's predictions on sample pictures (max "
                             f"difference {float(np.abs(got - expected).max()):.3g}); export not written")


def is_image_run(runm: RunModel) -> bool:
    """Whether the run classified pictures (its record holds an image convention)."""
    recorded = bool((runm.state.get("model") or {}).get("inputs"))
    return runm.tokenizer is None and recorded and runm.task.kind == "classification"
