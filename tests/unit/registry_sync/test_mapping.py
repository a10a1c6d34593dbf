"""The category mapping file and name normalisation: every catalogue id has an explicit outcome."""

from __future__ import annotations

import csv
import io
from importlib.resources import files

import pytest

from equipment.catalogue import CATEGORIES
from registry_sync.mapping import (
    MAPPING_VERSION,
    NOT_REPORTED_REASONS,
    MappingFileError,
    Outcome,
    load_mapping,
    normalise_manufacturer,
    normalise_model,
    parse_category_mapping,
    parse_manufacturer_aliases,
)
from registry_sync.table import COMPONENT_CATEGORIES

REGISTRY_LABELS = {
    "DESKTOP": "Επιτραπέζιοι υπολογιστές",
    "LAPTOP": "Φορητοί υπολογιστές",
    "TABLET": "Ταμπλέτες",
    "SERVER": "Εξυπηρετητές",
    "PRINTER": "Εκτυπωτές",
    "MFP": "Πολυμηχανήματα",
    "SCANNER": "Σαρωτές",
    "NETWORK": "Δικτυακός εξοπλισμός",
    "UPS": "Συστήματα αδιάλειπτης τροφοδοσίας (UPS)",
    "MONITOR": "Οθόνες",
    "OTHER_PERIPHERAL": "Λοιπά περιφερειακά",
}
HEADER = (
    "# mapping_version: 9.9\nlocal_category,outcome,registry_code,registry_label_el,reason,note\n"
)


def _mapping_csv_rows() -> list[dict[str, str]]:
    text = files("registry_sync").joinpath("data", "category_mapping.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text.partition("\n")[2])))


def test_every_catalogue_category_has_an_explicit_row() -> None:
    listed = {row["local_category"] for row in _mapping_csv_rows()}
    assert set(CATEGORIES) - listed == set()


def test_group_nodes_are_excluded_with_no_registry_category() -> None:
    mapping = load_mapping()
    groups = [c.category_id for c in CATEGORIES.values() if not c.is_assignable]
    assert groups
    for category_id in groups:
        assert mapping.outcome(category_id) == Outcome(
            "exclude", None, None, "no_registry_category"
        )


def test_component_categories_agree_with_the_catalogue() -> None:
    assert {c.category_id for c in CATEGORIES.values() if c.is_component} == COMPONENT_CATEGORIES


@pytest.mark.parametrize(
    ("local_category", "kind", "code"),
    [
        ("workstation", "map", "DESKTOP"),
        ("desktop", "map", "DESKTOP"),
        ("mini_pc", "map", "DESKTOP"),
        ("laptop", "map", "LAPTOP"),
        ("tablet", "map", "TABLET"),
        ("server", "map", "SERVER"),
        ("printer", "map", "PRINTER"),
        ("multifunction_printer", "map", "MFP"),
        ("scanner", "map", "SCANNER"),
        ("switch_hub", "map", "NETWORK"),
        ("modem_router", "map", "NETWORK"),
        ("access_point", "map", "NETWORK"),
        ("ups", "map", "UPS"),
        ("monitor", "map", "MONITOR"),
        ("projector", "other", "OTHER_PERIPHERAL"),
        ("interactive_system", "other", "OTHER_PERIPHERAL"),
        ("webcam", "other", "OTHER_PERIPHERAL"),
    ],
)
def test_reported_categories_map_to_the_registry_list(
    local_category: str, kind: str, code: str
) -> None:
    outcome = load_mapping().outcome(local_category)
    assert (outcome.kind, outcome.registry_code) == (kind, code)
    assert outcome.registry_label == REGISTRY_LABELS[code]
    assert outcome.reason is None
    assert outcome.is_reported


@pytest.mark.parametrize(
    ("local_category", "reason"),
    [
        ("cpu", "component_of_bundle"),
        ("ram", "component_of_bundle"),
        ("hard_disk", "component_of_bundle"),
        ("rack", "passive_infrastructure"),
        ("patch_panel", "passive_infrastructure"),
        ("mobile_lab", "passive_infrastructure"),
    ],
)
def test_excluded_categories_carry_their_reason(local_category: str, reason: str) -> None:
    assert load_mapping().outcome(local_category) == Outcome("exclude", None, None, reason)


def test_an_unknown_category_is_mapping_pending() -> None:
    outcome = load_mapping().outcome("holographic_projector")
    assert outcome == Outcome("exclude", None, None, "mapping_pending")
    assert not outcome.is_reported


def test_the_version_comes_from_the_csv_header() -> None:
    assert MAPPING_VERSION == "2026.1" == load_mapping().version
    provenance = files("registry_sync").joinpath("data", "PROVENANCE.md").read_text("utf-8")
    assert f"mapping_version: {MAPPING_VERSION}" in provenance


def test_the_packaged_file_uses_only_known_reasons_and_codes() -> None:
    for row in _mapping_csv_rows():
        assert row["outcome"] in {"map", "other", "exclude"}
        if row["outcome"] == "exclude":
            assert row["reason"] in NOT_REPORTED_REASONS
        else:
            assert REGISTRY_LABELS[row["registry_code"]] == row["registry_label_el"]
    assert load_mapping().local_categories() == {
        row["local_category"] for row in _mapping_csv_rows()
    }


@pytest.mark.parametrize(
    "text",
    [
        "local_category,outcome,registry_code,registry_label_el,reason,note\n",  # no version line
        HEADER + "laptop,map,LAPTOP,,,\n",  # a code without a label
        HEADER + "laptop,map,LAPTOP,Φορητοί,component_of_bundle,\n",  # a map with a reason
        HEADER + "cpu,exclude,,,because,\n",  # an unknown reason
        HEADER + "cpu,exclude,DESKTOP,,component_of_bundle,\n",  # an exclude with a code
        HEADER + "cpu,drop,,,component_of_bundle,\n",  # an unknown outcome
        HEADER + "ups,map,UPS,UPS,,\nups,map,UPS,UPS,,\n",  # a repeated category
        HEADER + "a,map,X,Ένα,,\nb,map,X,Άλλο,,\n",  # one code, two labels
        "# mapping_version: 1\nlocal_category,outcome\n",  # wrong columns
    ],
)
def test_a_broken_mapping_file_is_refused(text: str) -> None:
    with pytest.raises(MappingFileError):
        parse_category_mapping(text)


@pytest.mark.parametrize(
    "text",
    [
        "alias,canonical\nHP INC,HP\nHP INC,HP\n",  # repeated
        "alias,canonical\nHP INC,HP\nHP,HEWLETT\n",  # a chain
        "alias,canonical\nhp,HP\n",  # identical once normalised
        "name,canonical\nHP INC,HP\n",  # wrong columns
    ],
)
def test_a_broken_alias_file_is_refused(text: str) -> None:
    with pytest.raises(MappingFileError):
        parse_manufacturer_aliases(text)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("HP", "HP"),
        ("hp", "HP"),
        ("Hewlett-Packard", "HP"),
        ("  hewlett   packard ", "HP"),
        ("HP Inc.", "HP"),
        ("Hewlett Packard Enterprise", "HPE"),
        ("Dell Inc.", "DELL"),
        ("dell\tinc.", "DELL"),
        ("Lenovo Group", "LENOVO"),
        ("Acer Inc.", "ACER"),
        ("ASUSTeK", "ASUS"),
        ("Samsung Electronics", "SAMSUNG"),
        ("Seiko Epson", "EPSON"),
        ("Epson", "EPSON"),
        ("OEM", "OEM"),
        ("Some  New\u00a0Maker", "SOME NEW MAKER"),  # unknown: normalised, kept
        ("Ελληνική   Πληροφορική", "ΕΛΛΗΝΙΚΉ ΠΛΗΡΟΦΟΡΙΚΉ"),  # str.upper keeps the tonos
        ("", ""),
    ],
)
def test_manufacturers_are_normalised_and_aliased(written: str, expected: str) -> None:
    assert normalise_manufacturer(written) == expected


def test_manufacturer_normalisation_composes_decomposed_accents() -> None:
    assert normalise_manufacturer("ε\u0301να") == normalise_manufacturer("\u03adνα") == "ΈΝΑ"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("ProDesk 400 G6", "ProDesk 400 G6"),
        ("  ProDesk   400\tG6\n", "ProDesk 400 G6"),
        ("latitude 3520", "latitude 3520"),  # case kept
        ("Μοντέλο  Α\u0301λφα", "Μοντέλο Άλφα"),  # NFC
    ],
)
def test_models_keep_their_case_and_lose_extra_whitespace(written: str, expected: str) -> None:
    assert normalise_model(written) == expected
