"""Pictures end to end on tiny CNNs: the model's input convention (size, normalisation) is found, applied, recorded
and applied again by predict, evaluate and export; what reading did to the pictures is said; the report shows the
mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.data.normalise import IMAGENET_MEAN
from frostline.models.inputs import from_preprocessor, resolve_inputs
from tests import models

runner = CliRunner()
MODELS_FILE = Path(models.__file__).resolve()
FACTORY = f"{MODELS_FILE}:tiny_efficientnet"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _folder(root: Path, per_class: int = 10, size: tuple[int, int] = (20, 14), grey: bool = True) -> str:
    """Two classes of greyscale, non-square pictures: bright squares on the left or on the right."""
    rng = np.random.default_rng(0)
    for cls, side in (("left", 0), ("right", 1)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size[1], size[0]), dtype=np.uint8)
            half = size[0] // 2
            img[:, side * half:(side + 1) * half] += rng.integers(120, 190, dtype=np.uint8)
            picture = Image.fromarray(img, "L") if grey else Image.fromarray(img, "L").convert("RGB")
            picture.save(root / cls / f"{i}.png")
    return str(root)


def _train(tmp_path: Path, *extra: str) -> tuple[Path, str]:
    data = _folder(tmp_path / "pics")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", FACTORY, "--data", data, "--strategy", "partial:2",
                                 "--epochs", "2", "--batch-size", "4", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_models_own_convention_is_applied_recorded_and_said(tmp_path):
    out, output = _train(tmp_path)
    assert "note: images: 20 pictures, 20x14; all greyscale: grey repeated into 3 channels (RGB); not all square: " \
           "stretched to square; resized to 16x16 (bilinear)" in _flat(output)
    assert "normalised (x - mean) / std with x in [0, 1], mean 0.500/0.500/0.500, std 0.250/0.250/0.250 (the " \
           "model's pretrained_cfg)" in _flat(output)
    state = json.loads((out / "state.json").read_text())
    inputs = state["model"]["inputs"]
    assert inputs["size"] == 16 and inputs["model_size"] == 16 and inputs["mean"] == [0.5] * 3
    assert inputs["std"] == [0.25] * 3 and not inputs["assumed"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["inputs"]["size"] == 16 and metrics["run"]["bn"]["mode"] == "eval"


def test_predict_and_evaluate_prepare_pictures_as_training_did(tmp_path):
    out, _ = _train(tmp_path)
    run = fl.load_run(out, model=FACTORY)
    assert run.inputs.size == 16 and run.inputs.std == (0.25, 0.25, 0.25)
    pictures = sorted(Path(tmp_path / "pics").rglob("*.png"))
    by_folder = run.predict(Path(tmp_path / "pics"))
    # by hand: RGB, 16 x 16 bilinear, (x - 0.5) / 0.25, the run's model
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((16, 16), Image.BILINEAR)))
                     .permute(2, 0, 1).float() / 255 for p in pictures])
    with torch.no_grad():
        expected = torch.softmax(run.model((x - 0.5) / 0.25), -1).numpy()
    np.testing.assert_allclose(by_folder.probs, expected, atol=1e-5)
    # the run's predictions.csv and evaluate on the same folder agree with predict
    report = fl.evaluate(out, str(tmp_path / "pics"), model=FACTORY)
    assert report["test"]["n"] == 20
    assert report["test"]["accuracy"] == pytest.approx(float((expected.argmax(1) == [0] * 10 + [1] * 10).mean()))


def test_image_size_option_overrides_the_models_size(tmp_path):
    out, output = _train(tmp_path, "--image-size", "12")
    assert "resized to 12x12" in output
    inputs = json.loads((out / "state.json").read_text())["model"]["inputs"]
    assert inputs["size"] == 12 and inputs["model_size"] == 16
    assert fl.load_run(out, model=FACTORY).inputs.size == 12


def test_a_model_that_states_nothing_gets_imagenets_convention_with_a_note(tmp_path):
    data = _folder(tmp_path / "pics", size=(12, 12), grey=False)
    result = runner.invoke(app, ["train", "--model", "tests.models:tiny_resnet", "--data", data, "--image-size", "12",
                                 "--strategy", "linear-probe", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    flat = _flat(result.output)
    assert "20 pictures, 12x12; kept at 12x12" in flat and "greyscale" not in flat
    assert "(not stated by the model: ImageNet's assumed; state yours with model.pretrained_cfg" in flat
    assert resolve_inputs(models.tiny_resnet()).mean == IMAGENET_MEAN


def test_hugging_face_vision_folders_read_their_preprocessor_config(tmp_path):
    folder = tmp_path / "hfres"
    models.tiny_hf_resnet().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert from_preprocessor(folder, None) is None  # no preprocessor, no image_size in a ResNet config
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"do_normalize": True, "image_mean": [0.1, 0.2, 0.3], "image_std": [0.9, 0.8, 0.7],
         "size": {"shortest_edge": 40}, "crop_pct": 0.875, "do_resize": True}))
    inputs = fl.load_model(f"hf:{folder}").inputs
    assert inputs is not None and inputs.size == 40 and inputs.mean == (0.1, 0.2, 0.3) and not inputs.assumed
    assert inputs.source == "preprocessor_config.json" and config["model_type"] == "resnet"


def test_export_carries_the_preprocessing_and_its_recipe_reproduces_the_run(tmp_path):
    out, _ = _train(tmp_path)
    kind = fl.export_run(out, tmp_path / "exp", model=FACTORY)
    assert kind.startswith("state dict + preprocessing")
    meta = json.loads((tmp_path / "exp" / "head.json").read_text())
    assert meta["image"]["size"] == 16 and meta["image"]["std"] == [0.25] * 3 and meta["head"]["module"] == "_fc"
    readme = (tmp_path / "exp" / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    pictures = [str(p) for p in sorted(Path(tmp_path / "pics").rglob("*.png"))]
    namespace = {"build_your_model": models.tiny_efficientnet}
    exec(code.replace('["your_picture.png"]', repr(pictures)), namespace)
    expected = fl.load_run(out, model=FACTORY).predict(Path(tmp_path / "pics")).probs
    np.testing.assert_allclose(torch.softmax(namespace["logits"], -1).numpy(), expected, atol=1e-5)


def test_the_report_shows_the_misclassified_pictures(tmp_path):
    out, _ = _train(tmp_path)
    html = (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    wrong = metrics["test"]["n"] - round(metrics["test"]["accuracy"] * metrics["test"]["n"])
    assert "<h2>Misclassified pictures</h2>" in html
    if wrong:
        assert f"{wrong} of {metrics['test']['n']} test pictures are wrong" in html
        assert 'alt="misclassified pictures" src="data:image/png;base64,' in html
    else:
        assert "every test picture" in html


@pytest.mark.skipif(__import__("importlib").util.find_spec("animal_mnist") is None, reason="animal-mnist==0.4 absent")
def test_the_image_demo_writes_its_pictures_once_and_never_over_a_users_folder(tmp_path):
    from frostline.runs.demo import demo_images_config

    cfg, said = demo_images_config(str(tmp_path / "runs" / "demo-images"), per_class=2)
    assert said.startswith("wrote 20 animal-mnist pictures (MIT)") and cfg.model == "efficientnet-lite0"
    assert cfg.image_size == 96 and cfg.dedup and Path(cfg.data) == tmp_path / "runs" / "animal-mnist-2"
    assert sorted(p.name for p in Path(cfg.data).iterdir())[:2] == ["bear", "bird"]
    _, again = demo_images_config(str(tmp_path / "runs" / "demo-images"), per_class=2)
    assert again.startswith("reusing")
    (Path(cfg.data) / "bear" / "mine.png").write_bytes(b"not the demo's")
    with pytest.raises(fl.FrostlineError, match="is not the demo's 2 pictures per class"):
        demo_images_config(str(tmp_path / "runs" / "demo-images"), per_class=2)


def test_unreadable_pictures_and_other_files_are_said_in_training_and_prediction(tmp_path):
    data = Path(_folder(tmp_path / "pics"))
    (data / "left" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (data / "right" / "empty.jpg").write_bytes(b"")
    (data / "right" / "notes.txt").write_text("taken on a Tuesday")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", FACTORY, "--data", str(data), "--strategy", "linear-probe",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    flat = _flat(result.output)
    assert ("pictures in " + str(data) + " were dropped: 2 unreadable pictures (damaged, empty or not the format "
            "their suffix says) (left/broken.png, right/empty.jpg)") in flat
    assert "1 file(s) that are not pictures ignored (.txt): right/notes.txt" in flat
    assert json.loads((out / "metrics.json").read_text())["data"]["skipped_rows"] == 2
    predicted = runner.invoke(app, ["predict", "--checkpoint", str(out), "--model", FACTORY, "--data", str(data)])
    assert predicted.exit_code == 0, predicted.output
    assert "SKIPPED: left/broken.png, right/empty.jpg" in _flat(predicted.output)


def test_predict_takes_one_picture_file_and_names_an_unreadable_one(tmp_path):
    out, _ = _train(tmp_path)
    picture = tmp_path / "pics" / "left" / "0.png"
    one = runner.invoke(app, ["predict", "--checkpoint", str(out), "--model", FACTORY, "--data", str(picture)])
    assert one.exit_code == 0, one.output
    run = fl.load_run(out, model=FACTORY)
    by_file = run.predict(picture)
    np.testing.assert_allclose(by_file.probs, run.predict(Image.open(picture)).probs, atol=1e-6)
    assert by_file.names == ["0.png"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(fl.FrostlineError, match=r"broken.png: cannot be read as a picture"):
        run.predict(broken)


def test_a_text_model_on_pictures_names_the_bundled_image_model(tmp_path):
    data = _folder(tmp_path / "pics")
    result = runner.invoke(app, ["train", "--model", "minilm", "--data", data, "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "use an image model: --model efficientnet-lite0 (bundled, pretrained on ImageNet)" in _flat(result.output)
    # a factory's text model has no tokenizer to tell: its forward fails on pictures, said in one line
    result = runner.invoke(app, ["train", "--model", "tests.models:tiny_bert", "--data", data, "--out",
                                 str(tmp_path / "run2")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert ("model 'tests.models:tiny_bert' fails on a batch of pictures (a tensor (2, 3, 224, 224)): ValueError: "
            "too many values to unpack (expected 2); is it a model for pictures?") in _flat(result.output)


def test_a_size_far_below_the_models_own_is_warned_and_an_augmented_probe_says_what_it_does(tmp_path):
    data = _folder(tmp_path / "pics")
    outputs = []
    for size in (16, 32):
        result = runner.invoke(app, ["train", "--model", f"{MODELS_FILE}:tiny_efficientnet_64", "--data", data,
                                     "--strategy", "linear-probe", "--image-size", str(size), "--out",
                                     str(tmp_path / f"run{size}")])
        assert result.exit_code == 0, result.output
        outputs.append(_flat(result.output))
    assert "warning: --image-size 16 is a quarter or less of the 64 px the model was pretrained at" in outputs[0]
    assert "quarter or less" not in outputs[1]
    result = runner.invoke(app, ["train", "--model", FACTORY, "--data", data, "--strategy", "linear-probe",
                                 "--augment", "hflip", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert ("so the head trains by gradient steps for --epochs, NOT the converged linear probe fit (leave out "
            "--augment for the exact probe)") in _flat(result.output)


def test_pictures_with_two_labels_are_shown_by_file(tmp_path):
    data = Path(_folder(tmp_path / "pics"))
    (data / "right" / "copy.png").write_bytes((data / "left" / "3.png").read_bytes())
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", FACTORY, "--data", str(data), "--strategy", "linear-probe",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    found = {f["code"]: f for f in json.loads((out / "metrics.json").read_text())["diagnoses"]}
    text = found["conflicting-labels"]["message"]
    assert "(pictures compared by file content)" in text and "normalising case" not in text
    assert "left/3.png = " in text and "right/copy.png" in text
