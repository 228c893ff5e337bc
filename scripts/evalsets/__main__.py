"""`python -m scripts.evalsets build [--only NAME] [--out data/evalsets] [--check]`.

`build` fetches each set's pinned Debian packages into the cache (once; the only network
step), parses them and writes `<out>/<name>/`; `--check` rebuilds in memory and exits 1
if any file differs from what is on disk. `fetch` only downloads; `list` names the sets.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from scripts.evalsets import debarchive
from scripts.evalsets.registry import SPECS
from scripts.evalsets.spec import Files, SetSpec
from scripts.evalsets.write import render, stats, write

ROOT = Path(__file__).resolve().parents[2]


def _files(spec: SetSpec, cache: Path) -> Files:
    """Each package's wanted files, fetched into the cache if need be."""
    out: Files = {}
    for p in spec.packages:
        wanted = functools.partial(spec.wants, p.name)
        out[p.name] = debarchive.read(debarchive.fetch(p, cache), wanted)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    parser = argparse.ArgumentParser(prog="python -m scripts.evalsets", description=__doc__)
    parser.add_argument("command", choices=("build", "fetch", "list"))
    parser.add_argument("--only", action="append", choices=sorted(SPECS), help="repeatable")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "evalsets")
    parser.add_argument("--cache", type=Path, default=debarchive.default_cache())
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    specs = [SPECS[n] for n in (args.only or sorted(SPECS))]
    if args.command == "list":
        for s in specs:
            print(f"{s.name}\t{s.project}\t{', '.join(p.name for p in s.packages)}")
        return 0
    differs = 0
    for spec in specs:
        if args.command == "fetch":
            for p in spec.packages:
                print(debarchive.fetch(p, args.cache))
            continue
        files = _files(spec, args.cache)
        es = spec.build(files)
        contents = render(spec, es, files)
        folder = args.out / spec.name
        if args.check:
            for name, text in contents.items():
                path = folder / name
                if not path.exists() or path.read_bytes() != text.encode("utf-8"):
                    print(f"differs: {path}")
                    differs += 1
        else:
            write(folder, contents)
        counts = stats(es)
        print(f"{spec.name}: {counts['docs']} docs, {counts['questions']} questions -> {folder}")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
