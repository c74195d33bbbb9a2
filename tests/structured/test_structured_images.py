"""``images=[...]``: every accepted kind, both wire formats, bytes checked at the server,
and the bad inputs (unreadable path, not an image, a text-only model) failing before any
call."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from kite_lab import CapabilityError, InvalidInput
from kite_lab.core.types import ImagePart, Message, canonical_json
from kite_lab.structured.images import load_image, load_images


def png_bytes(color: str = "red", size: tuple[int, int] = (3, 2)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_every_kind_of_image_arrives_intact(provider, make_kite, fake_llm, tmp_path) -> None:
    path_png, raw_jpeg = png_bytes("red"), jpeg_bytes()
    (tmp_path / "red.png").write_bytes(path_png)
    pil = Image.new("RGB", (2, 2), "green")
    data_png = png_bytes("white", (1, 1))
    data_url = "data:image/png;base64," + base64.b64encode(data_png).decode()
    url = "https://example.org/cat.jpg"
    ai = make_kite(provider)
    completion = ai.generate(
        "Describe these.", images=[tmp_path / "red.png", raw_jpeg, pil, data_url, url]
    )
    assert completion.text.startswith("Echo: Describe these.")
    seen = fake_llm.requests[-1].images
    assert [s.media_type for s in seen[:4]] == ["image/png", "image/jpeg", "image/png", "image/png"]
    assert seen[0].data == path_png and seen[1].data == raw_jpeg and seen[3].data == data_png
    assert Image.open(io.BytesIO(seen[2].data)).getpixel((0, 0)) == (0, 128, 0)
    assert seen[4].url == url and seen[4].data is None
    content = fake_llm.requests[-1].messages[-1]["content"]
    if provider == "openai":
        assert content[0] == {"type": "text", "text": "Describe these."}
        assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    else:  # images first, then the text; base64 sources, a url source for the URL
        assert content[0]["source"]["type"] == "base64"
        assert content[4]["source"] == {"type": "url", "url": url}
        assert content[-1] == {"type": "text", "text": "Describe these."}


def test_images_go_with_the_last_user_message_and_stream(make_kite, fake_llm) -> None:
    ai = make_kite("anthropic")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "and this?"}]
    assert list(ai.stream(messages=messages, images=[png_bytes()]))
    sent = fake_llm.requests[-1].messages
    assert sent[0]["content"] == "hi" and isinstance(sent[-1]["content"], list)
    assert fake_llm.requests[-1].images[0].data == png_bytes()


def test_an_unreadable_path_names_it_and_sends_nothing(make_kite, fake_llm, tmp_path) -> None:
    ai = make_kite("openai")
    missing = tmp_path / "nope.png"
    with pytest.raises(InvalidInput, match="nope.png") as caught:
        ai.generate("look", images=[png_bytes(), missing])
    assert "does not exist" in str(caught.value)
    with pytest.raises(InvalidInput, match="is a directory"):
        ai.generate("look", images=[tmp_path])
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InvalidInput, match="notes.txt.*not a PNG"):
        ai.generate("look", images=[str(tmp_path / "notes.txt")])
    with pytest.raises(InvalidInput, match="invalid base64"):
        ai.generate("look", images=["data:image/png;base64,%%%"])
    with pytest.raises(TypeError, match="a file path, bytes, a PIL image"):
        ai.generate("look", images=[12])
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-3.5-turbo"), ("groq", None), ("ollama", None), ("anthropic", "claude-2.1")],
)
def test_text_only_models_refuse_images_before_any_call(
    provider, model, make_kite, fake_llm
) -> None:
    ai = make_kite(provider)
    with pytest.raises(CapabilityError) as caught:
        ai.generate("What is this?", images=[png_bytes()], model=model)
    error = caught.value
    assert error.capability == "images" and error.provider == provider
    assert "does not take images" in str(error)
    assert fake_llm.requests == []


def test_vision_models_of_mixed_providers_are_accepted(make_kite, fake_llm) -> None:
    make_kite("ollama").generate("What is this?", images=[png_bytes()], model="llava:7b")
    make_kite("groq").generate("What?", images=[png_bytes()],
                               model="groq/meta-llama/llama-4-scout-17b-16e-instruct")
    assert len(fake_llm.requests) == 2


def test_history_and_cache_keys_hold_a_reference_not_the_blob(make_kite) -> None:
    data = png_bytes("red", (40, 40))
    blob = base64.b64encode(data).decode()
    ai = make_kite("openai")
    provider, request = ai.build_request("look", images=[data])
    stored = canonical_json(request.fingerprint_fields(provider.name))
    assert blob not in stored and request.messages[0].images[0].sha256 in stored
    ref = Message("user", "look", images=[load_image(data)]).to_dict()["images"][0]
    assert ref == {"source": "bytes", "media_type": "image/png", "bytes": len(data),
                   "sha256": ImagePart("image/png", data=data).sha256}
    other = ai.build_request("look", images=[png_bytes("blue", (40, 40))])[1]
    assert other.cache_key("openai") != request.cache_key("openai")
    back = Message.from_any({"role": "user", "content": "x", "images": [ref]})
    assert back.images[0].data is None and back.images[0].source == "bytes"


def test_load_images_accepts_one_image_or_many(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes())
    assert len(load_images(str(tmp_path / "a.png"))) == 1
    assert len(load_images([png_bytes(), tmp_path / "a.png"])) == 2
    assert load_images(None) == []
