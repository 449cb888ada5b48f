"""params.yaml is checked strictly: every committed params file passes, every bad one fails once, clearly."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deepfx.cli import main
from deepfx.config import SCHEMA, load_params, validate_params
from deepfx.errors import DeepfxError

from conftest import ROOT, tiny_params


@pytest.mark.parametrize("path", [ROOT / "params.yaml", ROOT / ".test" / "params.yaml"], ids=["default", "tiny"])
def test_committed_params_files_are_valid(path: Path) -> None:
    params = load_params(path)
    assert params["effects"] and params["archs"]


def test_defaults_are_filled_in() -> None:
    params = tiny_params()
    del params["train"]["threads"], params["evaluate"]["overlay_samples"]
    checked = validate_params(params)
    assert checked["train"]["threads"] == 1 and checked["evaluate"]["overlay_samples"] == 300
    assert "threads" not in params["train"], "the caller's dict is not modified"


def test_every_schema_key_is_documented() -> None:
    def walk(node: dict, where: str) -> None:
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{name} has no description"
            walk(sub, f"{where}.{name}")

    walk(SCHEMA, "params")
    walk(SCHEMA["$defs"]["effect"], "effects.<name>")
    walk(SCHEMA["$defs"]["model"], "effects.<name>.model")
    walk(SCHEMA["$defs"]["train_overrides"], "effects.<name>.model.train")


BAD = [
    (lambda p: p["effects"]["distortion"].update(backend="vst4"), "effects.distortion.backend: 'vst4' is not one of"),
    (lambda p: p["train"].update(epochz=3), "train: Additional properties are not allowed ('epochz' was unexpected)"),
    (lambda p: p["effects"]["low_pass"].pop("chain"), "effects.low_pass: 'chain' is a required property"),
    (lambda p: p.update(archs=["gru"]), "archs[0]: 'gru' is not one of"),
    (lambda p: p["effects"]["low_pass"].pop("model"), "effects.low_pass: 'model' is a required property"),
    (lambda p: p["effects"]["low_pass"]["model"].update(arch="fft"), "effects.low_pass.model.arch: 'fft' is not one of"),
    (lambda p: p["effects"]["low_pass"]["model"].update(train={"lr": 1}), "effects.low_pass.model.train: Additional properties"),
    (lambda p: p["models"].pop("cnn"), "models.cnn: missing; the baseline 'cnn' (archs) needs"),
    (lambda p: p["effects"]["low_pass"]["model"].update(arch="cnn"), "effects.low_pass.model.arch: 'cnn' is already trained for every effect"),
    (lambda p: p["train"].update(epochs=0), "train.epochs: 0 is less than the minimum of 1"),
    (lambda p: p["effects"].update({"Bad Name": {"backend": "lv2", "uri": "x"}}), "effects: 'Bad Name' does not match"),
    (lambda p: p["effects"]["distortion"].update(backend="lv2"), "effects.distortion: 'uri' is a required property"),
    (lambda p: p.pop("tracking"), "(top level): 'tracking' is a required property"),
]


@pytest.mark.parametrize("mutate, message", BAD)
def test_bad_params_give_one_clear_error(mutate, message: str) -> None:
    params = tiny_params()
    mutate(params)
    with pytest.raises(DeepfxError) as info:
        validate_params(params)
    assert str(info.value).startswith("params.yaml: ")
    assert message in str(info.value)


def test_unreadable_params_file(tmp_path: Path) -> None:
    with pytest.raises(DeepfxError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "p.yaml").write_text("a: [1,")
    with pytest.raises(DeepfxError, match="p.yaml: not valid YAML"):
        load_params(tmp_path / "p.yaml")
    (tmp_path / "q.yaml").write_text("- 1\n")
    with pytest.raises(DeepfxError, match="must be a YAML mapping"):
        load_params(tmp_path / "q.yaml")


def test_cli_names_unknown_effect_and_arch(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(tiny_params()))
    assert main(["process", "--effect", "flanger"]) == 2
    assert capsys.readouterr().err.strip() == (
        "deepfx: error: effects: no effect named 'flanger' in params.yaml (known: distortion, low_pass)"
    )
    assert main(["train", "--effect", "distortion", "--arch", "gru"]) == 2
    assert (
        "archs: distortion trains cnn, tcn (archs and effects.distortion.model), not 'gru'"
        in capsys.readouterr().err
    )
    assert not Path("data").exists() and not Path("models").exists()


def test_cli_rejects_params_that_fail_the_schema(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    params = copy.deepcopy(tiny_params())
    params["sample_rate"] = "fast"
    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert main(["generate"]) == 2
    assert capsys.readouterr().err.strip() == "deepfx: error: params.yaml: sample_rate: 'fast' is not of type 'integer'"
    assert not Path("data").exists()
