"""Kernel tables: the event log, its position counter, outbox, snapshots, idempotency keys, offsets.

Also the server-side append function `ictc_append` and the Greek fold `ictc_fold`, as they were
when this revision was written: their SQL is frozen here, not imported, so that changing
`shared.schema.APPEND_FUNCTION` or `shared.greek.fold_function_ddl()` needs a new revision (the
stairway test compares a migrated database with the current definitions and fails on a drift).

Revision ID: kernel_0001
Revises: (root of the kernel branch)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "kernel_0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = ("kernel",)
depends_on: str | None = None

SEED_POSITION_ROW = (
    "INSERT INTO event_positions (id, last_position) VALUES (1, 0) ON CONFLICT DO NOTHING"
)

APPEND_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ictc_append(p_streams jsonb)
RETURNS TABLE(out_stream_id text, out_version integer, out_position bigint, out_prevhash text,
              out_hash text)
LANGUAGE plpgsql AS $fn$
DECLARE
    s jsonb;
    v_total integer;
    v_base bigint;
    v_ord integer := 0;
    v_stream text;
    v_version integer;
    v_hash text;
    v_digest text;
    v_streams text[] := '{}';
    v_versions integer[] := '{}';
    v_prevs text[] := '{}';
    v_hashes text[] := '{}';
    v_events jsonb[] := '{}';
    e jsonb;
BEGIN
    SELECT coalesce(sum(jsonb_array_length(x -> 'events')), 0)::integer INTO v_total
      FROM jsonb_array_elements(p_streams) AS x;
    UPDATE event_positions SET last_position = last_position + v_total WHERE id = 1
      RETURNING last_position - v_total INTO v_base;
    FOR s IN SELECT value FROM jsonb_array_elements(p_streams) LOOP
        v_stream := s ->> 'stream_id';
        SELECT ev.version, ev.hash INTO v_version, v_hash
          FROM events AS ev WHERE ev.stream_id = v_stream ORDER BY ev.version DESC LIMIT 1;
        IF NOT FOUND THEN
            v_version := 0;
            v_hash := repeat('0', 64);
        END IF;
        IF jsonb_typeof(s -> 'expected_version') = 'number'
           AND (s ->> 'expected_version')::integer <> v_version THEN
            RAISE EXCEPTION USING ERRCODE = 'IC409',
                MESSAGE = format('stream %s is at version %s', v_stream, v_version),
                DETAIL = v_version::text, HINT = v_stream;
        END IF;
        FOR e IN SELECT value FROM jsonb_array_elements(s -> 'events') LOOP
            v_version := v_version + 1;
            v_digest := e ->> 'digest';
            v_streams := v_streams || v_stream;
            v_versions := v_versions || v_version;
            v_prevs := v_prevs || v_hash;
            v_hash := encode(sha256(decode(v_hash, 'hex') || decode(v_digest, 'hex')
                                    || int4send(v_version)), 'hex');
            v_hashes := v_hashes || v_hash;
            v_events := v_events || e;
        END LOOP;
    END LOOP;
    -- One set-based insert per table: cheaper than a statement per event.
    INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data,
                        metadata, unit_id, recorded_at, prevhash, hash)
    SELECT v_base + t.ord, (t.e ->> 'event_id')::uuid, t.stream_id, t.version, t.e ->> 'type',
           (t.e ->> 'schema_version')::smallint, t.e -> 'data', t.e -> 'metadata',
           t.e ->> 'unit_id', (t.e ->> 'recorded_at')::timestamptz, t.prev, t.hash
      FROM unnest(v_events, v_streams, v_versions, v_prevs, v_hashes)
           WITH ORDINALITY AS t(e, stream_id, version, prev, hash, ord);
    INSERT INTO outbox (position) SELECT v_base + g FROM generate_series(1, v_total) AS g;
    RETURN QUERY
      SELECT t.stream_id, t.version, v_base + t.ord, t.prev, t.hash
        FROM unnest(v_streams, v_versions, v_prevs, v_hashes)
             WITH ORDINALITY AS t(stream_id, version, prev, hash, ord)
       ORDER BY t.ord;
END
$fn$
"""

FOLD_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ictc_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN btrim(regexp_replace(translate(CASE WHEN $1 ~ '[\u0080-\u036f\u1f00-\u1fff]' THEN translate(replace(replace($1, 'ß', 'ss'), 'ŉ', 'ʼn'), 'µÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĐĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦĨĩĪīĬĭĮįİĲĴĵĶķĹĺĻļĽľĿŁŃńŅņŇňŊŌōŎŏŐőŒŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƁƂƄƆƇƉƊƋƎƏƐƑƓƔƖƗƘƜƝƟƠơƢƤƦƧƩƬƮƯưƱƲƳƵƷƸƼǄǅǇǈǊǋǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǢǣǤǦǧǨǩǪǫǬǭǮǯǰǱǲǴǵǶǷǸǹǺǻǼǽǾǿȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȜȞȟȠȢȤȦȧȨȩȪȫȬȭȮȯȰȱȲȳȺȻȽȾɁɃɄɅɆɈɊɌɎἀἁἂἃἄἅἆἇἈἉἊἋἌἍἎἏἐἑἒἓἔἕἘἙἚἛἜἝἠἡἢἣἤἥἦἧἨἩἪἫἬἭἮἯἰἱἲἳἴἵἶἷἸἹἺἻἼἽἾἿὀὁὂὃὄὅὈὉὊὋὌὍὐὑὒὓὔὕὖὗὙὛὝὟὠὡὢὣὤὥὦὧὨὩὪὫὬὭὮὯὰάὲέὴήὶίὸόὺύὼώᾀᾁᾂᾃᾄᾅᾆᾇᾈᾉᾊᾋᾌᾍᾎᾏᾐᾑᾒᾓᾔᾕᾖᾗᾘᾙᾚᾛᾜᾝᾞᾟᾠᾡᾢᾣᾤᾥᾦᾧᾨᾩᾪᾫᾬᾭᾮᾯᾰᾱᾲᾳᾴᾶᾷᾸᾹᾺΆᾼι῁ῂῃῄῆῇῈΈῊΉῌ῍῎῏ῐῑῒΐῖῗῘῙῚΊ῝῞῟ῠῡῢΰῤῥῦῧῨῩῪΎῬ῭΅`ῲῳῴῶῷῸΌῺΏῼ´̴̵̶̷̸̡̢̧̨̛̖̗̘̙̜̝̞̟̠̣̤̥̦̩̪̫̬̭̮̯̰̱̲̳̹̺̻̼͇͈͉͍͎͓͔͕͖͙͚̀́̂̃̄̅̆̇̈̉̊̋̌̍̎̏̐̑̒̓̔̽̾̿̀́͂̓̈́͆͊͋͌͐͑͒͗͛ͣͤͥͦͧͨͩͪͫͬͭͮͯ̕̚͘͜͟͢͝͞͠͡ͅ', 'μaaaaaaæceeeeiiiiðnoooooøuuuuyþaaaaaaceeeeiiiinooooouuuuyyaaaaaaccccccccddđeeeeeeeeeegggggggghhħiiiiiiiiiĳjjkkllllllŀłnnnnnnŋooooooœrrrrrrssssssssttttŧuuuuuuuuuuuuwwyyyzzzzzzsɓƃƅɔƈɖɗƌǝəɛƒɠɣɩɨƙɯɲɵooƣƥʀƨʃƭʈuuʊʋƴƶʒƹƽǆǆǉǉǌǌaaiioouuuuuuuuuuaaaaææǥggkkooooʒʒjǳǳggƕƿnnaaææøøaaaaeeeeiiiioooorrrruuuussttȝhhƞȣȥaaeeooooooooyyⱥȼƚⱦɂƀʉʌɇɉɋɍɏααααααααααααααααεεεεεεεεεεεεηηηηηηηηηηηηηηηηιιιιιιιιιιιιιιιιοοοοοοοοοοοουυυυυυυυυυυυωωωωωωωωωωωωωωωωααεεηηιιοουυωωααααααααααααααααηηηηηηηηηηηηηηηηωωωωωωωωωωωωωωωωααααααααααααι¨ηηηηηεεηηη᾿᾿᾿ιιιιιιιιιι῾῾῾υυυυρρυυυυυυρ¨¨`ωωωωωοοωωω´') ELSE $1 END, 'ABCDEFGHIJKLMNOPQRSTUVWXYZͰͲʹͶ;Ϳ΅Ά·ΈΉΊΌΎΏΐΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫάέήίΰςϊϋόύώϏϐϑϓϔϕϖϘϚϜϞϠϢϤϦϨϪϬϮϰϱϴϵϷϹϺϽϾϿ', 'abcdefghijklmnopqrstuvwxyzͱͳʹͷ;ϳ¨α·εηιουωιαβγδεζηθικλμνξοπρστυφχψωιυαεηιυσιυουωϗβθϒϒφπϙϛϝϟϡϣϥϧϩϫϭϯκρθεϸϲϻͻͼͽ'), '[\u0009\u000a\u000b\u000c\u000d\u001c\u001d\u001e\u001f\u0020\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000]+', ' ', 'g'), ' ')
"""


def upgrade() -> None:
    """Create the kernel tables, seed the position counter, create the SQL functions."""
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.SmallInteger(), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), nullable=False),
        sa.Column("unit_id", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prevhash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_id_version"),
        sa.CheckConstraint("version > 0", name="ck_events_version_positive"),
    )
    op.create_index("ix_events_unit_id_position", "events", ["unit_id", "position"])
    op.create_index("ix_events_recorded_at", "events", ["recorded_at"])
    op.create_table(
        "event_positions",
        # A smallserial, as `shared.schema` declares it (SQLAlchemy's default for an integer key),
        # though only the seeded row 1 ever exists.
        sa.Column("id", sa.SmallInteger(), autoincrement=True, nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_positions"),
        sa.CheckConstraint("id = 1", name="ck_event_positions_single_row"),
    )
    op.create_table(
        "outbox",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_outbox"),
    )
    op.create_table(
        "snapshots",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name="pk_snapshots"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )
    op.create_table(
        "projection_offsets",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("source_position", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("projection", "topic", "partition", name="pk_projection_offsets"),
    )
    op.execute(SEED_POSITION_ROW)
    op.execute(APPEND_FUNCTION)
    op.execute(FOLD_FUNCTION)


def downgrade() -> None:
    """Drop the functions and the kernel tables (and every event in them)."""
    op.execute("DROP FUNCTION IF EXISTS ictc_fold(text)")
    op.execute("DROP FUNCTION IF EXISTS ictc_append(jsonb)")
    for table in (
        "projection_offsets",
        "idempotency_keys",
        "snapshots",
        "outbox",
        "event_positions",
        "events",
    ):
        op.drop_table(table)
