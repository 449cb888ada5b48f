"""params.yaml: load it, check it against the JSON schema, fill in documented defaults."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deepfx.errors import DeepfxError

__all__ = ["SCHEMA", "load_params", "validate_params"]

#: The JSON schema of params.yaml (``additionalProperties: false`` everywhere it matters).
SCHEMA: dict[str, Any] = json.loads(
    resources.files("deepfx").joinpath("schema/params.schema.json").read_text()
)


def _with_defaults(validator_class: type) -> type:
    """A validator class that also writes each property's ``default`` into the instance."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):  # noqa: ANN001 - jsonschema's signature
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _where(error: jsonschema.ValidationError) -> str:
    """``effects.fuzz.chain[0]`` style location of a schema error."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_params(params: Mapping[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Check ``params`` against the schema; return a copy with defaults filled in.

    Raises:
        DeepfxError: ``<source>: <key>: <what is wrong>`` for the most relevant violation.
    """
    checked = copy.deepcopy(dict(params))
    error = jsonschema.exceptions.best_match(_Validator(SCHEMA).iter_errors(checked))
    if error is not None:
        raise DeepfxError(f"{source}: {_where(error)}: {error.message}")
    _check_models(checked, source)
    return checked


def _check_models(params: Mapping[str, Any], source: str) -> None:
    """Every baseline has its ``models`` entry; no effect's own arch is also a baseline."""
    for arch in params["archs"]:
        if arch not in params["models"]:
            raise DeepfxError(
                f"{source}: models.{arch}: missing; the baseline {arch!r} (archs) needs its "
                "hyper-parameters here ({} takes the architecture's defaults)"
            )
    for effect, spec in params["effects"].items():
        arch = spec["model"]["arch"]
        if arch in params["archs"]:
            raise DeepfxError(
                f"{source}: effects.{effect}.model.arch: {arch!r} is already trained for every "
                "effect as a baseline (archs); choose another arch or drop it from archs"
            )


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Read and validate a params file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DeepfxError(f"{path}: no such params file") from None
    except yaml.YAMLError as exc:
        raise DeepfxError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise DeepfxError(f"{path}: must be a YAML mapping of parameters")
    return validate_params(raw, source=str(path))
