"""Text embedders: WordLlama inside the process by default, or any OpenAI-compatible server.

Both return one vector per text, in order, and never block the event loop: WordLlama runs in
the caller's executor, the server is called through the async OpenAI client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import httpx2
import numpy as np
import openai
import wordllama
from wordllama import WordLlama

from shared.config import Settings
from workers.rag.e5 import E5Embedder
from workers.rag.ensemble import EnsembleEmbedder, parse_ensemble
from workers.rag.minilm import MiniLMEmbedder


class Embedder(Protocol):
    """Turns texts into vectors of `dim` floats; `name` identifies the model."""

    name: str
    dim: int

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """One vector per text, in the same order; `query` marks questions (asymmetric models
        embed them differently from the passages they are matched against)."""
        ...

    async def aclose(self) -> None:
        """Release the embedder's resources."""
        ...


class WordLlamaEmbedder:
    """WordLlama's 256-dim static embeddings, shipped in its wheel; runs in an executor."""

    name = "wordllama-l2-supercat-256"

    def __init__(self, model: Any, executor: concurrent.futures.Executor) -> None:
        self._model = model
        self._executor = executor
        self.dim: int = int(model.embedding.shape[1])

    @classmethod
    def load(cls, executor: concurrent.futures.Executor) -> WordLlamaEmbedder:
        """Load the weights from the installed package (blocking; run it in `executor`)."""
        # Any other arguments make WordLlama look for the model on a hub, unreachable here.
        model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        return cls(model, executor)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Unit-length vectors (a text with no tokens gets zeros), computed in the executor;
        questions and passages alike."""
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._embed_sync, list(texts))

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        vectors = np.asarray(self._model.embed(texts, norm=False), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        result: list[list[float]] = unit.tolist()
        return result

    async def aclose(self) -> None:
        """Nothing to release: the executor belongs to the caller."""


class OpenAIEmbedder:
    """Any OpenAI-compatible `/v1/embeddings` endpoint (vLLM, TEI, OpenAI)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str,
        timeout_s: float,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 64,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.name = model
        self.dim = 0  # known after start()
        self._batch_size = batch_size
        self._prefixes = {True: query_prefix, False: passage_prefix}
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=0,  # retries belong to the job layer, or they multiply
            http_client=http_client,
        )

    async def start(self) -> None:
        """Learn the vector size by embedding one probe text."""
        (vector,) = await self.embed(["dimension probe"])
        self.dim = len(vector)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Vectors as the server returns them, requested in batches of `batch_size`; each
        text gets the query or passage prefix first (e5 models want "query: "/"passage: ")."""
        prefix = self._prefixes[query]
        vectors: list[list[float]] = []
        for first in range(0, len(texts), self._batch_size):
            batch = [prefix + text for text in texts[first : first + self._batch_size]]
            response = await self._client.embeddings.create(
                model=self.name, input=batch, encoding_format="float"
            )
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise ValueError(
                    f"embeddings server returned {len(data)} vectors for {len(batch)} texts"
                )
            for item in data:
                if self.dim and len(item.embedding) != self.dim:
                    raise ValueError(
                        f"embeddings server returned a {len(item.embedding)}-dim vector;"
                        f" {self.name} gave {self.dim} at start"
                    )
                vectors.append(item.embedding)
        return vectors

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


async def build_embedder(settings: Settings, executor: concurrent.futures.Executor) -> Embedder:
    """The configured embedder, started: the server's when a URL is set, else an embedded one
    or an ensemble of embedded ones (`a+b`, or weighted `a*2+b`; see `workers.rag.ensemble`).

    Embedded models, loaded from installed packages inside `executor`: all-MiniLM-L6-v2
    (`all-minilm-l6-v2`), multilingual-e5-small (`multilingual-e5-small`) and WordLlama
    (`wordllama-l2-supercat-256`).
    """
    if settings.embeddings_base_url:
        embedder = OpenAIEmbedder(
            base_url=settings.embeddings_base_url,
            model=settings.embeddings_model,
            api_key=settings.embeddings_api_key.get_secret_value(),
            timeout_s=settings.embeddings_timeout_s,
            query_prefix=settings.embeddings_query_prefix,
            passage_prefix=settings.embeddings_passage_prefix,
        )
        try:
            await embedder.start()
        except BaseException:
            await embedder.aclose()
            raise
        return embedder
    parts = parse_ensemble(settings.embeddings_model)
    unknown = [name for name, _ in parts if name not in EMBEDDED]
    if unknown:
        raise ValueError(
            f"RAGQ_EMBEDDINGS_MODEL={settings.embeddings_model!r}: {unknown[0]!r} needs"
            f" RAGQ_EMBEDDINGS_BASE_URL; the embedded models are {sorted(EMBEDDED)}"
        )
    loop = asyncio.get_running_loop()
    loaded: list[Embedder] = []
    for name, _ in parts:
        if name == MiniLMEmbedder.name and settings.embedding_processes > 0:
            processes = settings.embedding_processes
            loaded.append(await asyncio.to_thread(MiniLMEmbedder.in_processes, processes))
            continue
        loaded.append(await loop.run_in_executor(executor, EMBEDDED[name], executor))
    if len(loaded) == 1:
        return loaded[0]
    return EnsembleEmbedder(loaded, [weight for _, weight in parts])


# The models that run inside the process: name → loader (blocking, given the executor).
EMBEDDED: Final[dict[str, Callable[[concurrent.futures.Executor], Embedder]]] = {
    MiniLMEmbedder.name: MiniLMEmbedder.load,
    E5Embedder.name: E5Embedder.load,
    WordLlamaEmbedder.name: WordLlamaEmbedder.load,
}
