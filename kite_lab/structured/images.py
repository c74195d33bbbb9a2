"""Images for ``images=[...]`` and ``%%kite --image``: whatever the user has, as ``ImagePart``.

Why load everything up front: an unreadable path or a file that is not an image must fail
before anything is sent (and before the model is paid), with a message naming it. So each
image is read and sniffed here, in ``build_request``; providers only render the loaded
bytes in their wire format (OpenAI ``image_url`` parts, Anthropic ``image`` blocks).

Accepted: a path (str or ``os.PathLike``), raw bytes, a PIL image, a ``data:`` URL, or an
http(s) URL (passed on as a URL: nothing is downloaded here).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kite_lab.core.errors import InvalidInput
from kite_lab.core.types import ImagePart, Message

__all__ = [
    "ACCEPTED_IMAGES",
    "MAX_IMAGE_BYTES",
    "attach_images",
    "load_image",
    "load_images",
    "sniff_media_type",
]

ACCEPTED_IMAGES = "a file path, bytes, a PIL image, a data: URL or an http(s) URL"
#: OpenAI's limit per image; Anthropic's is lower (5 MB) and it says so itself
MAX_IMAGE_BYTES = 20 * 1024 * 1024

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_media_type(data: bytes) -> str | None:
    """``image/png`` / ``jpeg`` / ``gif`` / ``webp`` from the first bytes, else None."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def load_images(images: Iterable[Any] | None) -> list[ImagePart]:
    """``load_image`` for each; a single str/bytes/path is one image, not a sequence."""
    if images is None:
        return []
    if isinstance(images, str | bytes | bytearray | os.PathLike) or _is_pil(images):
        images = [images]
    return [load_image(image) for image in images]


def attach_images(messages: list[Message], images: Iterable[Any]) -> list[Message]:
    """``messages`` with ``images`` loaded and attached to the last user message."""
    from dataclasses import replace

    loaded = load_images(images)
    if not loaded:
        return messages
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            out = list(messages)
            out[index] = replace(messages[index], images=[*messages[index].images, *loaded])
            return out
    raise InvalidInput("images= needs a user message to go with; pass a prompt")


def load_image(image: Any) -> ImagePart:
    """One image as an ``ImagePart``; ``InvalidInput`` names what cannot be used."""
    if isinstance(image, ImagePart):
        return image
    if isinstance(image, bytes | bytearray | memoryview):
        return _from_bytes(bytes(image), "bytes")
    if _is_pil(image):
        return _from_pil(image)
    if isinstance(image, str):
        if image.startswith("data:"):
            return _from_data_url(image)
        if image.startswith(("http://", "https://")):
            guessed = mimetypes.guess_type(image.split("?", 1)[0])[0]
            media_type = guessed if guessed and guessed.startswith("image/") else "image/jpeg"
            return ImagePart(media_type, url=image, source=image)
        return _from_path(Path(image), image)
    if isinstance(image, os.PathLike):
        return _from_path(Path(image), os.fspath(image))
    raise TypeError(f"an image must be {ACCEPTED_IMAGES}; got {type(image).__name__}")


def _from_path(path: Path, shown: str) -> ImagePart:
    try:
        data = path.expanduser().read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"image {shown!r} does not exist; nothing was sent") from None
    except IsADirectoryError:
        raise InvalidInput(f"image {shown!r} is a directory, not an image file") from None
    except OSError as exc:
        raise InvalidInput(
            f"cannot read image {shown!r} ({exc.strerror or exc}); nothing was sent"
        ) from None
    return _from_bytes(data, shown)


def _from_bytes(data: bytes, source: str) -> ImagePart:
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput(
            f"image {source!r} is {len(data) / 1e6:.1f} MB; the limit is "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB: resize it first"
        )
    media_type = sniff_media_type(data)
    if media_type is None:
        raise InvalidInput(
            f"image {source!r} is not a PNG, JPEG, GIF or WebP image (the providers take "
            "no other kind); nothing was sent"
        )
    return ImagePart(media_type, data=data, source=source)


def _from_data_url(url: str) -> ImagePart:
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidInput(f"data URL {url[:40]!r}... is not base64 (data:image/png;base64,...)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"data URL {url[:40]!r}... holds invalid base64") from None
    return _from_bytes(data, "data URL")


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save")


def _from_pil(image: Any) -> ImagePart:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return _from_bytes(buffer.getvalue(), "PIL image")
