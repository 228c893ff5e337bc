"""`python -m scripts.localllm serve`: llama.cpp's OpenAI-compatible server (the `xllamacpp`
wheel) on one of the catalog's models, its weights verified first.

It prints `READY <base URL>` once it listens (as the test LLM does, so the harness starts
both alike), then serves until SIGTERM or SIGINT. `fetch` only makes the weights ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from scripts.localllm.catalog import DEFAULT_MODEL, MODELS, LocalModel, model_named
from scripts.localllm.weights import WeightsError, ensure_weights, verify


def _say(message: str) -> None:
    sys.stderr.write(f"local llm: {message}\n")
    sys.stderr.flush()


def weights_for(model: LocalModel, gguf: str | None) -> Path:
    """The model's verified GGUF: the one given (checked, never rebuilt), else the cache's."""
    if gguf:
        path = Path(gguf)
        verify(model, path)
        return path
    return ensure_weights(model, say=_say)


def serve(args: argparse.Namespace) -> int:
    import xllamacpp  # the native library: loaded only to serve

    model = model_named(args.model)
    path = weights_for(model, args.gguf)
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = [model.name]  # a list: a plain string is taken as a set of letters
    params.hostnames = [args.host]
    params.port = args.port  # 0: any free port, printed below
    params.n_parallel = args.parallel or model.parallel
    params.n_ctx = args.ctx or model.n_ctx
    threads = args.threads or max(1, min(4, os.cpu_count() or 1))
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.offline = True  # never the model hub
    params.ui = False
    params.endpoint_metrics = True  # /metrics: tokens, cache reuse, busy slots
    params.verbosity = args.verbosity
    # blocking signals first: the server's threads inherit the mask, so SIGTERM reaches the
    # sigwait below instead of killing the process mid-reply
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    server = xllamacpp.Server(params)
    sys.stdout.write(f"READY {server.listening_address}\n")
    sys.stdout.flush()
    _say(
        f"{model.title} at {server.listening_address}/v1 ({params.n_parallel} slots,"
        f" {params.n_ctx} tokens of context, {threads} threads)"
    )
    signal.sigwait(stop)
    del server  # stops its threads
    return 0


def fetch(args: argparse.Namespace) -> int:
    path = ensure_weights(model_named(args.model), say=_say)
    sys.stdout.write(f"{path}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.localllm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("serve", serve), ("fetch", fetch)):
        cmd = sub.add_parser(name)
        cmd.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS))
        cmd.set_defaults(func=func)
        if name == "serve":
            cmd.add_argument("--gguf", help="a GGUF file of that model (checked by its sha256)")
            cmd.add_argument("--host", default="127.0.0.1")
            cmd.add_argument("--port", type=int, default=0, help="0 (default): a free port")
            cmd.add_argument("--parallel", type=int, default=0, help="slots (default: 2)")
            cmd.add_argument("--ctx", type=int, default=0, help="context tokens, all slots")
            cmd.add_argument("--threads", type=int, default=0, help="default: cores, up to 4")
            cmd.add_argument("--verbosity", type=int, default=1, help="llama.cpp's log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (WeightsError, KeyError) as exc:
        _say(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}")
        return 2
    return code
