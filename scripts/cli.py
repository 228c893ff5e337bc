"""The `ragq` command: serve, worker, dev, keys, index, ingest, ask, eval.

It sits above `api` and `workers` (the import-linter layers in pyproject.toml): each
subcommand imports what it runs when it runs, so `ragq keys` never loads the API or the
worker, and every edge is an import statement the linter sees.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from typing import Any

import httpx
from redis.exceptions import RedisError

from scripts import evaluation
from scripts.ask import add_ask_arguments
from scripts.clicommon import DEFAULT_URL
from scripts.ingest import add_ingest_arguments
from scripts.localllm.catalog import DEFAULT_MODEL as DEFAULT_LOCAL_MODEL
from scripts.localllm.catalog import MODELS as LOCAL_MODELS
from shared.config import get_settings
from shared.logging import configure_logging, get_logger

MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
APP_FACTORY = "api.app:create_app"  # the name of what `from api.app import create_app` imports


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    workers = args.workers or settings.api_workers
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_VAR):
        # prometheus_client's multi-process mode: each process writes its samples under this
        # directory and /metrics sums them, whichever process answers the scrape. Fresh per
        # run (stale files would be summed too); the processes inherit the variable.
        metrics_dir = tempfile.mkdtemp(prefix="ragq-metrics-")
        os.environ[MULTIPROC_VAR] = metrics_dir
    if workers > 1:
        configure_logging(settings.log_level)  # the supervisor's lines: JSON like the rest
        get_logger("scripts.cli").info(
            "api.metrics_multiprocess", workers=workers, dir=os.environ[MULTIPROC_VAR]
        )
    if workers == 1:
        from api.app import create_app  # uvicorn calls the factory in this process

        app: Any = create_app
    else:
        # each API process imports it itself; the supervisor must not (it would write its
        # own metric files into the multi-process directory)
        app = APP_FACTORY
    try:
        uvicorn.run(
            app,
            factory=True,
            host=args.host or settings.host,
            port=args.port if args.port is not None else settings.port,
            workers=workers,
            log_config=None,  # create_app configures structlog JSON logging
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from workers.main import run

    run(args.queue)
    return 0


def _keys(args: argparse.Namespace) -> int:
    from shared.apikeys import ApiKeyStore
    from shared.clients import make_redis
    from shared.redis_keys import Keys

    async def main() -> int:
        settings = get_settings()
        redis = make_redis(settings)
        store = ApiKeyStore(redis, Keys(settings.key_prefix))
        try:
            if args.keys_cmd == "create":
                key, _ = await store.create(
                    args.tenant,
                    rpm=args.rpm,
                    max_concurrent=args.max_concurrent,
                    daily_budget_usd=args.daily_budget_usd,
                    tier=args.tier,
                )
                print(key)
            elif args.keys_cmd == "list":
                for k in await store.list():
                    state = "revoked" if k.revoked else "active"
                    print(
                        f"{k.key_id}\t{k.tenant}\t{state}\trpm={k.rpm}\t"
                        f"max_concurrent={k.max_concurrent}\ttier={k.tier}\t{k.created_at}"
                    )
            elif not await store.revoke(args.key_id):
                print(f"no key {args.key_id}", file=sys.stderr)
                return 1
            return 0
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _ingest(args: argparse.Namespace) -> int:
    from scripts.ingest import run_ingest

    return run_ingest(args)


def _ask(args: argparse.Namespace) -> int:
    from scripts.ask import run_ask

    return run_ask(args)


def _eval(args: argparse.Namespace) -> int:
    return evaluation.run_from_args(args)


def _index(args: argparse.Namespace) -> int:
    from scripts.indexstatus import run_status

    return run_status(get_settings())


def _dev(args: argparse.Namespace) -> int:
    from scripts.devstack import run_dev

    return run_dev(args)


def build_parser() -> argparse.ArgumentParser:
    """The `ragq` argument parser."""
    parser = argparse.ArgumentParser(prog="ragq", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", help="address to listen on (default: RAGQ_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: RAGQ_PORT, 8000)")
    serve.add_argument("--workers", type=int, help="API processes (default: RAGQ_API_WORKERS, 1)")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run one worker process")
    worker.add_argument(
        "--queue",
        choices=["interactive", "batch"],
        help="serve only this queue (default: both)",
    )
    worker.set_defaults(func=_worker)

    dev = sub.add_parser("dev", help="everything on this machine, for a first try")
    dev.add_argument(
        "--corpus",
        default="data/corpus",
        help="sample corpus to load once; a folder with manifest.jsonl (default: %(default)s)",
    )
    dev.add_argument(
        "--port", type=int, help="port of the API it starts (default: RAGQ_PORT, 8000)"
    )
    dev.add_argument(
        "--llm",
        choices=["local", "none"],
        help="local: answer with a small model under llama.cpp on this machine (started"
        " for you); none: ragq's LLM settings (default: local if RAGQ_LOCAL_LLM is set)",
    )
    dev.add_argument(
        "--llm-model",
        choices=sorted(LOCAL_MODELS),
        help=f"the local model (default: RAGQ_LOCAL_LLM, else {DEFAULT_LOCAL_MODEL})",
    )
    dev.set_defaults(func=_dev)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_cmd", required=True)
    create = keys_sub.add_parser("create", help="issue a key (printed on stdout)")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument(
        "--rpm",
        type=int,
        default=0,
        help="requests per minute; 0 = RAGQ_DEFAULT_RPM (default: %(default)s)",
    )
    create.add_argument(
        "--max-concurrent",
        type=int,
        default=0,
        help="jobs of this key running at once; 0 = RAGQ_DEFAULT_MAX_CONCURRENT "
        "(default: %(default)s)",
    )
    create.add_argument(
        "--daily-budget-usd",
        type=float,
        help="the tenant's spend per UTC day, USD (default: the service's budget only)",
    )
    create.add_argument(
        "--tier",
        default="default",
        help="inference tier, a name of RAGQ_LLM_TIERS (default: %(default)s)",
    )
    keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key's id, as `ragq keys list` shows it")
    keys.set_defaults(func=_keys)

    index = sub.add_parser("index", help="the embedding model of each tenant's index")
    index_sub = index.add_subparsers(dest="index_cmd", required=True)
    index_sub.add_parser(
        "status",
        help="each tenant's embedding model and any move to RAGQ_EMBEDDINGS_MODEL under way"
        " (JSON; exit 1 while tenants remain to move)",
    )
    index.set_defaults(func=_index)

    ingest = sub.add_parser("ingest", help="upload .md/.txt files or folders through the API")
    add_ingest_arguments(ingest)
    ingest.set_defaults(func=_ingest)

    ask = sub.add_parser("ask", help="ask a question; streams the answer, then the citations")
    add_ask_arguments(ask)
    ask.set_defaults(func=_ask)

    eval_ = sub.add_parser(
        "eval",
        help="the deploy gate: score answers and citations on a question set",
        description="Ask every question of --data through POST /v1/rag and score the answers "
        "and citations; exit 0 when every threshold is met, 1 below one, 2 on usage or "
        "connection errors.",
    )
    evaluation.add_eval_arguments(eval_)
    eval_.set_defaults(func=_eval)
    return parser


# exit codes: 0 done; 1 something was not done (a file not loaded, an answer refused);
# 2 a usage error (argparse's); 3 a service ragq needs did not answer; 130 interrupted
UNREACHABLE = 3


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ragq` console script: a failure is one line on stderr."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except httpx.TransportError as exc:
        url = getattr(args, "url", DEFAULT_URL)
        print(
            f"ragq: cannot reach the ragq API at {url} ({type(exc).__name__}: {exc}); "
            "is `ragq serve` running there? Pass its address with --url.",
            file=sys.stderr,
        )
        return UNREACHABLE
    except RedisError as exc:
        where = get_settings().redis_url
        print(
            f"ragq: Redis does not answer at {where} ({exc}); start redis-server or set "
            "RAGQ_REDIS_URL.",
            file=sys.stderr,
        )
        return UNREACHABLE
    except KeyboardInterrupt:
        print("ragq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
