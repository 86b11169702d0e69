"""The subset of MLflow's search filter grammar the registry answers.

Clauses joined by ``AND``: ``name = 'x'``, ``name LIKE 'fr%'``, ``name ILIKE 'fr%'``,
``run_id = 'r'``, ``tags.KEY = 'v'`` and ``tags.KEY != 'v'`` (``tag.`` too; backticks
allowed around KEY), ``version_number = 3``, ``source_path = 's'``. Anything else is
refused with the clause named, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from satchel.serving.registry.app_errors import BadRequest

_CLAUSE = re.compile(
    r"""^\s*(?P<key>[A-Za-z_][\w.]*|tags?\.`[^`]+`|tags?\."[^"]+")\s*
    (?P<op>=|!=|LIKE|ILIKE)\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\d+)\s*$""",
    re.X | re.I,
)
_SPLIT = re.compile(r"\s+AND\s+(?=(?:[^'\"]|'[^']*'|\"[^\"]*\")*$)", re.I)


@dataclass
class Filter:
    """A parsed filter: exact fields, a name pattern and tag equalities."""

    name: str | None = None
    name_like: str | None = None
    run_id: str | None = None
    version: int | None = None
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tags_not: dict[str, str] = field(default_factory=dict)

    def keeps(self, tags: dict[str, str]) -> bool:
        """False when an entity's tags hit a ``tags.KEY != 'v'`` clause."""
        return all(tags.get(k) != v for k, v in self.tags_not.items())


def parse(text: str | None) -> Filter:
    """Parse a filter string; raises BadRequest naming an unsupported clause."""
    out = Filter()
    if not text or not text.strip():
        return out
    if len(text) > 4096:
        raise BadRequest("filter is longer than 4096 characters")
    for clause in _SPLIT.split(text.strip()):
        m = _CLAUSE.match(clause)
        if not m:
            raise BadRequest(f"unsupported filter clause {clause.strip()[:80]!r}: use "
                             "name/run_id/tags.KEY/version_number = 'value' or name LIKE "
                             "'pattern', joined by AND")
        key, op, raw = m.group("key"), m.group("op").upper(), m.group("value")
        value = raw[1:-1].replace("\\'", "'").replace('\\"', '"') if raw[0] in "'\"" else raw
        lowered = key.lower()
        if lowered.startswith("tag."):
            key, lowered = "tags." + key[4:], "tags." + lowered[4:]
        if op == "!=":
            if not lowered.startswith("tags."):
                raise BadRequest(f"'!=' is only supported on tags, not in "
                                 f"{clause.strip()[:80]!r}")
            tag = key[5:]
            out.tags_not[tag[1:-1] if tag[:1] in "`\"" else tag] = value
            continue
        if lowered == "name":
            if op == "=":
                out.name = value
            else:
                out.name_like = value
        elif op != "=":
            raise BadRequest(f"{key} only supports '=' in filters")
        elif lowered == "run_id":
            out.run_id = value
        elif lowered == "version_number":
            if not value.isdigit():
                raise BadRequest("version_number must be compared with a number")
            out.version = int(value)
        elif lowered == "source_path":
            out.source = value
        elif lowered.startswith("tags."):
            tag = key[5:]
            if tag[:1] in "`\"":
                tag = tag[1:-1]
            out.tags[tag] = value
        else:
            raise BadRequest(f"unsupported filter key {key[:60]!r}")
    return out
