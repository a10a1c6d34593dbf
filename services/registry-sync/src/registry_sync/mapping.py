"""The versioned mapping from local equipment categories to the registry's, and name normalisation.

Why this exists: the national registry reports by its own list of categories and groups rows by
manufacturer and model as free text, so "Hewlett-Packard" and "HP  " must become one row. Which
local category goes where is reference data (`data/category_mapping.csv`, see `data/PROVENANCE.md`),
reviewed and versioned like code: its `mapping_version` travels in every push.

Usage::

    mapping = load_mapping()
    mapping.outcome("laptop")            # Outcome("map", "LAPTOP", "Φορητοί υπολογιστές", None)
    mapping.outcome("no_such_thing")     # Outcome("exclude", None, None, "mapping_pending")
    normalise_manufacturer(" Hewlett-Packard ")   # "HP"
    normalise_model("ProDesk  400 G6 ")             # "ProDesk 400 G6"

Notes:
- `MAPPING_VERSION` is read when this module is imported: the file is packaged with the code, so a
  broken file fails the import at once instead of the first report.
- Only `outcome` knows categories; rules that depend on where an item sits (a monitor inside a
  bundle) belong to `registry_sync.table`.
- Upper-casing is `str.upper` after NFC: Greek letters keep their accents ("Ά"), as the registry's
  free text does not say otherwise; aliases are matched on the normalised form.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final, Literal, get_args

OutcomeKind = Literal["map", "other", "exclude"]
NotReportedReason = Literal[
    "component_of_bundle",
    "passive_infrastructure",
    "not_ict",
    "no_registry_category",
    "mapping_pending",
]
NOT_REPORTED_REASONS: Final[frozenset[str]] = frozenset(get_args(NotReportedReason))

_VERSION_PREFIX = "# mapping_version:"
_COLUMNS = ("local_category", "outcome", "registry_code", "registry_label_el", "reason", "note")
_ALIAS_COLUMNS = ("alias", "canonical")


class MappingFileError(ValueError):
    """A mapping or alias file breaks its format; the message names the line and the rule."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happens to items of one local category: a registry row, or not reported and why."""

    kind: OutcomeKind
    registry_code: str | None
    registry_label: str | None
    reason: str | None

    @property
    def is_reported(self) -> bool:
        """Return whether items of this category become registry rows."""
        return self.kind != "exclude"


MAPPING_PENDING: Final = Outcome("exclude", None, None, "mapping_pending")


class Mapping:
    """One version of the category mapping plus the manufacturer aliases."""

    __slots__ = ("_aliases", "_outcomes", "version")

    def __init__(
        self,
        version: str,
        outcomes: dict[str, Outcome],
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.version = version
        self._outcomes = dict(outcomes)
        self._aliases = dict(aliases or {})

    def outcome(self, local_category: str) -> Outcome:
        """Return the outcome for `local_category`; an unknown one is `mapping_pending`."""
        return self._outcomes.get(local_category, MAPPING_PENDING)

    def local_categories(self) -> frozenset[str]:
        """Return every local category id with an explicit row."""
        return frozenset(self._outcomes)

    def canonical_manufacturer(self, normalised: str) -> str:
        """Return the canonical name for an already normalised manufacturer (itself if no alias)."""
        return self._aliases.get(normalised, normalised)

    def __repr__(self) -> str:
        return f"Mapping(version={self.version!r}, categories={len(self._outcomes)})"


def collapse_whitespace(text: str) -> str:
    """Return `text` in NFC, trimmed, with every run of whitespace made one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def normalise_model(name: str) -> str:
    """Return a model name trimmed and with whitespace collapsed; its case is kept."""
    return collapse_whitespace(name)


def _manufacturer_key(name: str) -> str:
    # NFC again after upper(): upper-casing a precomposed letter can leave a decomposed sequence.
    return unicodedata.normalize("NFC", collapse_whitespace(name).upper())


def normalise_manufacturer(name: str, mapping: Mapping | None = None) -> str:
    """Return a manufacturer trimmed, collapsed, upper-cased and resolved through the aliases."""
    return (mapping or load_mapping()).canonical_manufacturer(_manufacturer_key(name))


def _parse_outcome(row: dict[str, str], line: int) -> Outcome:
    kind = row["outcome"]
    code = row["registry_code"] or None
    label = row["registry_label_el"] or None
    reason = row["reason"] or None
    if kind in ("map", "other"):
        if code is None or label is None or reason is not None:
            raise MappingFileError(f"line {line}: {kind!r} needs a code and a label and no reason")
        return Outcome("map" if kind == "map" else "other", code, label, None)
    if kind == "exclude":
        if code is not None or label is not None or reason not in NOT_REPORTED_REASONS:
            raise MappingFileError(f"line {line}: 'exclude' needs a known reason and no code")
        return Outcome("exclude", None, None, reason)
    raise MappingFileError(f"line {line}: unknown outcome {kind!r}")


def parse_category_mapping(text: str) -> tuple[str, dict[str, Outcome]]:
    """Return the version and the outcome per local category of a `category_mapping.csv` text."""
    first, _, body = text.partition("\n")
    if not first.startswith(_VERSION_PREFIX) or not first[len(_VERSION_PREFIX) :].strip():
        raise MappingFileError(f"line 1: expected '{_VERSION_PREFIX} <version>'")
    version = first[len(_VERSION_PREFIX) :].strip()
    reader = csv.DictReader(io.StringIO(body))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise MappingFileError(f"line 2: expected the columns {', '.join(_COLUMNS)}")
    outcomes: dict[str, Outcome] = {}
    labels: dict[str, str] = {}
    for line, row in enumerate(reader, start=3):
        local_category = row["local_category"]
        if not local_category or local_category in outcomes:
            raise MappingFileError(f"line {line}: empty or repeated category {local_category!r}")
        outcome = _parse_outcome(row, line)
        if outcome.registry_code is not None and outcome.registry_label is not None:
            known = labels.setdefault(outcome.registry_code, outcome.registry_label)
            if known != outcome.registry_label:
                raise MappingFileError(f"line {line}: {outcome.registry_code} has two labels")
        outcomes[local_category] = outcome
    return version, outcomes


def parse_manufacturer_aliases(text: str) -> dict[str, str]:
    """Return the canonical manufacturer per normalised alias of a `manufacturer_aliases.csv`."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _ALIAS_COLUMNS:
        raise MappingFileError(f"line 1: expected the columns {', '.join(_ALIAS_COLUMNS)}")
    aliases: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        alias, canonical = _manufacturer_key(row["alias"]), _manufacturer_key(row["canonical"])
        if not alias or not canonical or alias == canonical or alias in aliases:
            raise MappingFileError(f"line {line}: empty, identical or repeated alias {alias!r}")
        aliases[alias] = canonical
    chained = sorted(set(aliases.values()) & set(aliases))
    if chained:
        raise MappingFileError(f"canonical names that are also aliases: {', '.join(chained)}")
    return aliases


def _read_data(name: str) -> str:
    return files("registry_sync").joinpath("data", name).read_text(encoding="utf-8")


@cache
def load_mapping() -> Mapping:
    """Return the packaged mapping (read once per process)."""
    version, outcomes = parse_category_mapping(_read_data("category_mapping.csv"))
    aliases = parse_manufacturer_aliases(_read_data("manufacturer_aliases.csv"))
    return Mapping(version, outcomes, aliases)


MAPPING_VERSION: Final[str] = load_mapping().version
