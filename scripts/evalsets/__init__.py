"""Retrieval evaluation sets built offline from documentation that Debian packages ship.

Each set is one project's FAQ used as queries over that project's own documentation (ragq
issue #12): a FAQ question heading is the query, its answer section the gold document,
every other section a distractor. The packages are pinned by version and SHA-256 and read
without being installed (`debarchive.py`); each format has its section reader
(`htmlsections.py`, `rstsections.py`, `textsections.py`), each source its module
(`weechat.py`, `zsh.py`, `rfaq.py`, `django.py`, `borg.py`, `debianfaq.py`), the shared
rules are in `model.py`, and the files are written by `write.py`:

    python -m scripts.evalsets build [--only NAME] [--out data/evalsets] [--check]

`load.py` reads the built sets back (`names()`, `load(name)`).
"""
