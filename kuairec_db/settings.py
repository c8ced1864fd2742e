"""Model settings: each model's DEFAULTS, then the settings file, then ``--set``; and the
settings file itself, read by build and written by tune (tomli-w writes the TOML)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from kuairec_db import resources, runner, workspace
from kuairec_db.errors import UserError


def load_settings_file(path: Path | None) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """The settings file (settings.toml of the models folder unless --config says otherwise),
    if present."""
    explicit = path is not None
    path = path or resources.settings_file()
    if not path.is_file():
        if explicit:
            raise UserError(f"{path}: no such settings file")
        return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid TOML settings file ({exc})") from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise UserError(f"{path}: expected one [model] table per model, found {', '.join(bad)}")
    return path, data


def model_settings(
    model: runner.Model, from_file: dict[str, Any], overrides: dict[str, Any], file: Path | None
) -> dict[str, Any]:
    """DEFAULTS of the model, then the settings file, then --set; each value checked against
    the type and range the model declares (runner.model_setting_types)."""
    settings = runner.model_defaults(model)
    types = runner.model_setting_types(model)
    known = ", ".join(settings) or "none"
    origins = {key: f"{model.path.name} DEFAULTS" for key in settings}
    for origin, values in ((str(file), from_file), ("--set", overrides)):
        unknown = [k for k in values if k not in settings]
        if unknown:
            raise UserError(
                f"{origin}: model {model.name} has no setting {', '.join(unknown)} "
                f"(it has: {known})"
            )
        settings.update(values)
        origins.update({key: origin for key in values})
    return {
        key: types[key].convert(value, f"{origins[key]}: {model.name}.{key}")
        for key, value in settings.items()
    }


def resolve(
    models: list[runner.Model], config: Path | None, overrides: dict[str, dict[str, Any]]
) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """(the settings file read, model -> its checked settings) for the models of a build."""
    settings_file, file_settings = load_settings_file(config)
    available = runner.discover()
    strays = [name for name in file_settings if name not in available]
    if strays:
        raise UserError(
            f"{settings_file}: section(s) [{'], ['.join(strays)}] name no model "
            f"(models: {', '.join(available)})"
        )
    return settings_file, {
        m.name: model_settings(
            m, file_settings.get(m.name, {}), overrides.get(m.name, {}), settings_file
        )
        for m in models
    }


def write_settings_file(
    path: Path, header: list[str], tables: dict[str, dict[str, Any]], notes: dict[str, str]
) -> None:
    """Write PATH atomically: HEADER as comment lines, then one [model] table per entry of
    TABLES in name order, each after its line of NOTES (if any)."""
    lines = [f"# {line}" for line in header]
    for name in sorted(tables):
        lines.append("")
        if name in notes:
            lines.append(f"# {notes[name]}")
        lines.append(tomli_w.dumps({name: tables[name]}).rstrip("\n"))
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what build will read
    workspace.write_text_atomically(path, text)
