"""Compare the numpy EmbeddingGemma encoder with the outputs printed in the model's own card.

The shipped README.md gives the query/document similarities of a Red-Planet example, and the
shipped notebook.ipynb the first/last three values of three word vectors and three pair scores
(both made with sentence-transformers + torch by the model's authors).

Run: nice -n 19 /tmp/rerankers/venv/bin/python /tmp/rerankers/checks/check_gemma_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "loaders"))
from embeddinggemma import GemmaEncoder  # noqa: E402

README_SIMS = [0.3011, 0.6359, 0.4930, 0.4889]
NOTEBOOK_WORDS = {
    "apple": ([-0.18476306, 0.00167681, 0.03773484], [-0.07996225, -0.02348064, 0.00976741]),
    "banana": ([-0.21189538, -0.02657359, 0.02513712], [-0.08042689, -0.01999852, 0.00512146]),
    "car": ([-0.18924113, -0.02551468, 0.04486253], [-0.06377774, -0.03699806, 0.03973572]),
}
NOTEBOOK_PAIRS = [
    (
        "The chef prepared a delicious meal for the guests.",
        "A tasty dinner was cooked by the chef for the visitors.",
        0.8002148,
    ),
    (
        "She is an expert in machine learning.",
        "He has a deep interest in artificial intelligence.",
        0.45417833,
    ),
    ("The weather in Tokyo is sunny today.", "I need to buy groceries for the week.", 0.22262995),
]


def main() -> None:
    """Print the largest absolute differences from each published figure."""
    enc = GemmaEncoder(HERE.parent / "models/embeddinggemma-300m")
    q = enc.encode_queries(["Which planet is known as the Red Planet?"])
    d = enc.encode_documents(
        [
            "Venus is often called Earth's twin because of its similar size and proximity.",
            "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
            "Jupiter, the largest planet in our solar system, has a prominent red spot.",
            "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
        ]
    )
    sims = (q @ d.T)[0]
    words = enc.encode(list(NOTEBOOK_WORDS))
    word_diff = max(
        float(np.max(np.abs(np.r_[w[:3], w[-3:]] - np.r_[head, tail])))
        for w, (head, tail) in zip(words, NOTEBOOK_WORDS.values(), strict=True)
    )
    pair_sims = []
    for a, b, _ in NOTEBOOK_PAIRS:
        va, vb = enc.encode([a, b])
        pair_sims.append(float(va @ vb))
    print(
        json.dumps(
            {
                "readme_sims": [round(float(s), 4) for s in sims],
                "readme_expected": README_SIMS,
                "readme_max_abs_diff": round(float(np.max(np.abs(sims - README_SIMS))), 5),
                "notebook_word_values_max_abs_diff": round(word_diff, 6),
                "notebook_pair_sims": [round(s, 5) for s in pair_sims],
                "notebook_pair_expected": [p[2] for p in NOTEBOOK_PAIRS],
            }
        )
    )


if __name__ == "__main__":
    main()
