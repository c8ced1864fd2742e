"""Where the SQL files and the models are, in a checkout and in an installed wheel.

The repository keeps ``sql/`` and ``models/`` as top-level folders; the wheel ships them inside
the package as ``kuairec_db/_sql`` and ``kuairec_db/_models`` (pyproject.toml maps them). Both
are found with importlib.resources; an editable install (or a plain checkout on sys.path) has
no ``_sql`` folder in the package and reads the checkout's folders.

A build runs the shipped models plus the user's own: the folder given by ``--models-dir``, else
``./models`` when it exists. A user's file with a shipped model's name replaces that model. In
the checkout ``./models`` is the shipped folder itself, so nothing changes there.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from kuairec_db.errors import UserError

_CHECKOUT = Path(__file__).resolve().parent.parent


def _shipped(inside: str, checkout: str) -> Path:
    packaged = Path(str(importlib.resources.files("kuairec_db") / inside))
    return packaged if packaged.is_dir() else _CHECKOUT / checkout


SQL_DIR = _shipped("_sql", "sql")
SHIPPED_MODELS_DIR = _shipped("_models", "models")

_user_models_dir: Path | None = None  # set by --models-dir (or kuairec_db.build(models_dir=...))


def set_models_dir(folder: Path | str | None) -> None:
    """Use FOLDER for the user's own models (None: back to the default rule)."""
    global _user_models_dir
    if folder is None:
        _user_models_dir = None
        return
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"--models-dir {folder}: no such folder")
    _user_models_dir = path.resolve()


def user_models_dir() -> Path | None:
    """The user's models folder: --models-dir, else ./models when it exists, else None."""
    if _user_models_dir is not None:
        return _user_models_dir
    here = Path.cwd() / "models"
    return here.resolve() if here.is_dir() else None


def model_dirs() -> list[Path]:
    """The folders models are read from, later ones replacing earlier ones' files by name."""
    user = user_models_dir()
    if user is None or user == SHIPPED_MODELS_DIR.resolve():
        return [SHIPPED_MODELS_DIR]
    return [SHIPPED_MODELS_DIR, user]


def settings_file() -> Path:
    """The model settings file `tune` writes and `build` reads: settings.toml in the user's
    models folder (./models when there is none yet)."""
    return (user_models_dir() or Path.cwd() / "models") / "settings.toml"
