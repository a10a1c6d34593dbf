"""Greek folding, matching, sorting and display names; the SQL fold against real PostgreSQL.

The SQL tests run when TEST_PG_ADMIN_URL names a PostgreSQL superuser connection, and fail (never
skip) when it is set but unreachable. What they create lives in a schema inside a transaction that
is rolled back, except the C-locale database, which is dropped.
"""

# ruff: noqa: RUF001  (Greek letters are what these tests are about)

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from shared.greek import (
    FOLD_SCOPE,
    display_name,
    drop_fold_function_ddl,
    fold,
    fold_function_ddl,
    matches,
    sort_key,
    sql_like_patterns,
)

Connection = psycopg.Connection[tuple[object, ...]]

TRICKY = [
    "Άά Έέ Ήή Ίίΐϊ Όό Ύύΰϋ Ώώ ς",
    "ΆΈΉΊΌΎΏ ΪΫ",
    "ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ",
    "Γυμνάσιο Αθηνών",
    "1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ Ν. ΣΜΥΡΝΗΣ",
    "Πρωϊνό ΠΡΩΪΝΟ προϊόν",
    "ΑΣ ας Ας",
    "Crème Brûlée ÉCOLE Ångström Straße",
    "Ᾱᾳ Ἀθῆναι ᾨδεῖον",  # polytonic: breathings, perispomeni, iota subscript
    "α\u0301\u0308 decomposed",  # NFD input: marks as separate characters
    "\t  spaced\u00a0out \u2003 text\n",
    "50% γυμν_ασιο a\\b 'quoted'",
    "",
    "   ",
    "µ ϐ ϑ ϕ ϖ ϰ ϱ ϵ",  # micro sign and Greek letter variants fold to the plain letters
]


def test_fold_ignores_accents_case_and_final_sigma() -> None:
    assert fold("Γυμνάσιο Αθηνών") == fold("ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ") == fold("γυμνασιο αθηνων")
    assert fold("Γυμνάσιο Αθηνών") == "γυμνασιο αθηνων"
    assert fold("Άά Έέ Ήή Ίίΐϊ Όό Ύύΰϋ Ώώ ς") == "αα εε ηη ιιιι οο υυυυ ωω σ"
    assert fold("ΝΗΣΟΣ") == fold("νησος") == "νησοσ"


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ΠΡΩΪΝΟ", "πρωινο"),
        ("Crème Brûlée", "creme brulee"),
        ("Straße", "strasse"),
        ("ᾳ ᾼ", "α α"),  # the iota subscript is a diacritic, not a letter
        ("α\u0301\u0308", "α"),
        ("\t  spaced\u00a0out \u2003 text\n", "spaced out text"),
        ("µ ϐ ϑ", "μ β θ"),
        ("   ", ""),
    ],
)
def test_fold_handles_tricky_input(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_fold_is_idempotent_on_every_character_in_scope() -> None:
    for block in FOLD_SCOPE:
        for code in block:
            once = fold(chr(code))
            assert fold(once) == once, hex(code)


def test_matches_when_every_query_word_occurs_in_any_order() -> None:
    assert matches("γυμνασιο αθηνων", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ")
    assert matches("ΑΘΗΝ γυμν", "1ο Γυμνάσιο Αθηνών")
    assert matches("ύμνασ", "ΓΥΜΝΑΣΙΟ")  # substrings, not only prefixes
    assert matches("", "anything")
    assert not matches("γυμνασιο πειραια", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ")
    assert not matches("λυκειο", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ")


def test_sort_key_orders_greek_alphabetically_regardless_of_accents_and_case() -> None:
    names = ["Ωρωπός", "βόλος", "ΑΘΗΝΑ", "Ζάκυνθος", "ήπειρος", "Σάμος", "ςαμ", "Ψαρά", "Ιθάκη"]
    assert sorted(names, key=sort_key) == [
        "ΑΘΗΝΑ", "βόλος", "Ζάκυνθος", "ήπειρος", "Ιθάκη", "ςαμ", "Σάμος", "Ψαρά", "Ωρωπός",
    ]  # fmt: skip


def test_sort_key_puts_latin_before_greek_and_is_total() -> None:
    names = ["Άλφα", "ΑΛΦΑ", "αλφα", "alpha", "Zeta", "1ο", "Αλφα"]
    # Equal folds fall back to code-point order of the original: Ά (U+0386) before Α (U+0391).
    expected = ["1ο", "alpha", "Zeta", "Άλφα", "ΑΛΦΑ", "Αλφα", "αλφα"]
    for seed in range(20):
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled, key=sort_key) == expected


@pytest.mark.parametrize(
    ("registry", "shown"),
    [
        ("ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "Γυμνασιο Αθηνων"),
        ("1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ Ν. ΣΜΥΡΝΗΣ", "1ο Γενικο Λυκειο Ν. Σμυρνης"),
        ("1Ο ΕΣΠΕΡΙΝΟ ΓΕΛ ΑΧΑΪΑΣ", "1ο Εσπερινο ΓΕΛ Αχαϊας"),
        ("12/ΘΕΣΙΟ ΔΗΜΟΤΙΚΟ ΣΧΟΛΕΙΟ ΑΓΙΑΣ ΠΑΡΑΣΚΕΥΗΣ-ΧΑΛΑΝΔΡΙΟΥ",
         "12/θεσιο Δημοτικο Σχολειο Αγιας Παρασκευης-Χαλανδριου"),
        ("ΕΠΑΛ ΑΘΗΝΑΣ (ΠΡΩΗΝ ΤΕΕ)", "ΕΠΑΛ Αθηνας (Πρωην ΤΕΕ)"),
        ("Β' ΓΥΜΝΑΣΙΟ ΚΑΙ ΛΥΚΕΙΟ ΤΗΣ ΚΩ", "Β' Γυμνασιο και Λυκειο της Κω"),
        ("ΔΙΕΥΘΥΝΣΗ Π.Ε. ΑΝΑΤ. ΑΤΤΙΚΗΣ", "Διευθυνση Π.Ε. Ανατ. Αττικης"),
        ("ΔΗΜΟΤΙΚΟ ΣΧΟΛΕΙΟ Ν ΙΩΝΙΑΣ", "Δημοτικο Σχολειο Ν Ιωνιας"),
        ("  ΚΠΕ   ΣΤΥΛΙΔΑΣ ", "ΚΠΕ Στυλιδας"),
        ("Γυμνάσιο Αθηνών", "Γυμνάσιο Αθηνών"),  # already cased by a person: kept
        ("1ο Γυμνάσιο  Αθηνών", "1ο Γυμνάσιο Αθηνών"),
        ("ATHENS COLLEGE", "Athens College"),
        ("", ""),
    ],
)  # fmt: skip
def test_display_name_title_cases_registry_capitals_without_inventing_accents(
    registry: str, shown: str
) -> None:
    assert display_name(registry) == shown


def test_display_name_keeps_the_fold() -> None:
    for text in TRICKY:
        assert fold(display_name(text)) == fold(text)


def test_sql_like_patterns_escape_like_wildcards() -> None:
    assert sql_like_patterns("  Γυμνάσιο  ΑΘΗΝΩΝ ") == ["%γυμνασιο%", "%αθηνων%"]
    assert sql_like_patterns("50% a_b c\\d") == ["%50\\%%", "%a\\_b%", "%c\\\\d%"]
    assert sql_like_patterns("") == []


# --- the SQL fold, against real PostgreSQL --------------------------------------------------------


def _random_texts(count: int) -> list[str]:
    alphabet = [chr(code) for block in FOLD_SCOPE for code in block if code != 0]
    alphabet += [" ", "\u00a0", "\u2003", "\u3000"]
    rng = random.Random(20240601)
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 24))) for _ in range(count)]


@pytest.fixture
def admin_url() -> str:
    url = os.environ.get("TEST_PG_ADMIN_URL")
    if not url:
        pytest.skip("TEST_PG_ADMIN_URL is not set: the SQL fold is not checked against PostgreSQL")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        pytest.fail(f"TEST_PG_ADMIN_URL is set but PostgreSQL is unreachable: {error}")
    return url


@pytest.fixture
def pg(admin_url: str) -> Iterator[Connection]:
    """Yield a connection in a transaction whose search path is a fresh schema holding ictc_fold."""
    schema = f"greek_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(f"SET LOCAL search_path TO {schema}")
        connection.execute(fold_function_ddl(schema))
        try:
            yield connection
        finally:
            connection.rollback()


def _sql_folds(connection: Connection, texts: list[str]) -> list[tuple[str, str]]:
    rows = connection.execute(
        "SELECT t, ictc_fold(t) FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
        [texts],
    ).fetchall()
    return [(str(text), str(folded)) for text, folded in rows]


def test_sql_fold_agrees_with_python_fold(
    pg: Connection,
) -> None:
    connection = pg
    texts = TRICKY + _random_texts(3000)
    disagreements = [
        (text, sql) for text, sql in _sql_folds(connection, texts) if sql != fold(text)
    ]
    assert disagreements == []


def test_sql_fold_is_immutable_enough_to_index(
    pg: Connection,
) -> None:
    connection = pg
    connection.execute("CREATE TABLE units (name text NOT NULL)")
    connection.execute("INSERT INTO units SELECT 'ΓΥΜΝΑΣΙΟ ' || g FROM generate_series(1, 500) g")
    connection.execute("INSERT INTO units VALUES ('1ο Γυμνάσιο Αθηνών')")
    connection.execute("CREATE INDEX ON units (ictc_fold(name))")
    connection.execute("ANALYZE units")
    connection.execute("SET LOCAL enable_seqscan = off")
    query = "SELECT name FROM units WHERE ictc_fold(name) = %s"
    plan = "\n".join(
        str(row[0]) for row in connection.execute(f"EXPLAIN {query}", [fold("1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ")])
    )
    assert "Index" in plan
    assert connection.execute(query, [fold("1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ")]).fetchall() == [
        ("1ο Γυμνάσιο Αθηνών",)
    ]


def test_sql_like_patterns_find_what_matches_finds(
    pg: Connection,
) -> None:
    connection = pg
    names = [*TRICKY, "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "2ο Λύκειο Αθηνών", "ΕΠΑΛ 50% a_b"]
    for query in ["γυμνασιο αθηνων", "ΑΘΗΝ", "50%", "a_b", "ab", "προϊον πρωινο", "ς", ""]:
        found = connection.execute(
            "SELECT n FROM unnest(%s::text[]) AS u(n) WHERE ictc_fold(n) LIKE ALL(%s::text[])",
            [names, sql_like_patterns(query)],
        ).fetchall()
        assert sorted(str(row[0]) for row in found) == sorted(n for n in names if matches(query, n))


def test_sql_order_agrees_with_sort_key(
    pg: Connection,
) -> None:
    connection = pg
    names = [*TRICKY, *_random_texts(300), "Άλφα", "ΑΛΦΑ", "αλφα", "alpha", "Ωμέγα"]
    ordered = connection.execute(
        'SELECT n FROM unnest(%s::text[]) AS u(n) ORDER BY ictc_fold(n) COLLATE "C", n COLLATE "C"',
        [names],
    ).fetchall()
    assert [str(row[0]) for row in ordered] == sorted(names, key=sort_key)


def test_sql_fold_is_the_same_in_a_c_locale_database(admin_url: str) -> None:
    # lower() in a C-ctype database leaves Greek untouched; ictc_fold must not depend on it.
    database = f"greek_c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=database)
        with psycopg.connect(url) as connection:
            connection.execute(fold_function_ddl())
            texts = TRICKY + _random_texts(500)
            assert [sql for _, sql in _sql_folds(connection, texts)] == [
                fold(text) for text in texts
            ]
            assert connection.execute("SELECT lower('ΑΘΗΝΑ')").fetchone() == ("ΑΘΗΝΑ",)
            connection.execute(drop_fold_function_ddl())
            assert connection.execute(
                "SELECT count(*) FROM pg_proc WHERE proname = 'ictc_fold'"
            ).fetchone() == (0,)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
