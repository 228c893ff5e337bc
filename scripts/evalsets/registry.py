"""Every evaluation set this package builds, by name."""

from __future__ import annotations

from scripts.evalsets import borg, debianfaq, django, rfaq, weechat, zsh
from scripts.evalsets.spec import SetSpec

SPECS: dict[str, SetSpec] = {
    m.SPEC.name: m.SPEC for m in (borg, debianfaq, django, rfaq, weechat, zsh)
}
