"""What `--model` names: a built-in offline model, a local folder, or a hub repository.

The fingerprint identifies the served model in cache keys: two Macs sharing a Redis cache
serve each other's answers only when they run the same checkpoint, whatever path it sits at.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

TINY_RANDOM = "tiny-random"
# Files whose content defines the model's behaviour; weights are identified by size and mtime
# only, because hashing gigabytes at every start would cost more than the load itself.
_CONFIG_FILES = ("config.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".npz", ".gguf")
FINGERPRINT_HEX_CHARS = 16


def _tiny_random() -> Path:
    from .tiny_model import tiny_random_path
    return tiny_random_path()


def _smollm2() -> Path:
    from .smollm2 import smollm2_path
    return smollm2_path()


# Built-in models: name -> what builds (or finds) its folder on this machine, with no hub.
# tiny-random: noise, for speed (tests, CI); smollm2-135m: a real instruct model from PyPI.
BUILT_IN = {TINY_RANDOM: _tiny_random, "smollm2-135m": _smollm2}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # the --model value as given (shown to clients as the served model)
    path: str  # what mlx_lm.server gets as --model
    local: bool  # a folder on disk: the child runs with HF_HUB_OFFLINE=1

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.path) if self.local else _name_fingerprint(self.name)


def resolve_model(name: str) -> ResolvedModel:
    """Map the --model value to what the child loads; builds a built-in model on first use."""
    if name in BUILT_IN:
        return ResolvedModel(name, str(BUILT_IN[name]()), local=True)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return ResolvedModel(name, os.path.abspath(expanded), local=True)
    return ResolvedModel(name, name, local=False)


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """Short sha256 over the config files' bytes and the weight files' names, sizes and mtimes."""
    root = Path(path)
    h = hashlib.sha256()
    for fname in _CONFIG_FILES:
        f = root / fname
        if f.is_file():
            h.update(fname.encode() + b"\0" + f.read_bytes() + b"\0")
    for f in sorted(root.iterdir()):
        if f.suffix in _WEIGHT_SUFFIXES and f.is_file():
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:FINGERPRINT_HEX_CHARS]


def _name_fingerprint(name: str) -> str:
    """A hub model before download: its repository name is all that is known up front."""
    return hashlib.sha256(b"hub\0" + name.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]
