"""Policies: immutable tag rules, retention policies, and namespace quotas with the usage
counters they check.

The counters (`namespace_blobs`, and `namespace_usage` in parts by the digest's last
character, see `schema`) are kept by triggers on `repository_blobs`
and `manifests`, so every code path that links, unlinks, stores or deletes content keeps them
(garbage collection and repository deletion included) in the same transaction, and existing
content is counted once here.

Revision ID: 0009
Revises: 0007
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = [
    "immutable_tag_rules",
    "namespace_quotas",
    "namespace_blobs",
    "namespace_usage",
    "retention_policies",
]
COUNTED = ("repository_blobs", "manifests")

SQLITE_NAMESPACE = (
    "(SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) "
    "ELSE name END FROM repositories WHERE id = {row}.repository_id)"
)


def _sqlite_size(table: str) -> str:
    if table == "manifests":
        return "NEW.size"
    return "COALESCE((SELECT size FROM blobs WHERE digest = NEW.digest), 0)"


def _sqlite_triggers(table: str) -> list[str]:
    new_ns = SQLITE_NAMESPACE.format(row="NEW")
    old_ns = SQLITE_NAMESPACE.format(row="OLD")
    return [
        f"""CREATE TRIGGER {table}_count_in AFTER INSERT ON {table} BEGIN
  INSERT OR IGNORE INTO namespace_blobs (namespace, digest, size, links)
    VALUES ({new_ns}, NEW.digest, {_sqlite_size(table)}, 0);
  UPDATE namespace_blobs SET links = links + 1
    WHERE namespace = {new_ns} AND digest = NEW.digest;
  INSERT OR IGNORE INTO namespace_usage (namespace, shard, bytes)
    VALUES ({new_ns}, substr(NEW.digest, -1), 0);
  UPDATE namespace_usage
    SET bytes = bytes + (SELECT size FROM namespace_blobs
                         WHERE namespace = {new_ns} AND digest = NEW.digest)
    WHERE namespace = {new_ns} AND shard = substr(NEW.digest, -1)
      AND (SELECT links FROM namespace_blobs
           WHERE namespace = {new_ns} AND digest = NEW.digest) = 1;
END""",
        f"""CREATE TRIGGER {table}_count_out AFTER DELETE ON {table} BEGIN
  UPDATE namespace_usage
    SET bytes = bytes - (SELECT size FROM namespace_blobs
                         WHERE namespace = {old_ns} AND digest = OLD.digest)
    WHERE namespace = {old_ns} AND shard = substr(OLD.digest, -1)
      AND (SELECT links FROM namespace_blobs
           WHERE namespace = {old_ns} AND digest = OLD.digest) = 1;
  UPDATE namespace_blobs SET links = links - 1
    WHERE namespace = {old_ns} AND digest = OLD.digest;
  DELETE FROM namespace_blobs
    WHERE namespace = {old_ns} AND digest = OLD.digest AND links <= 0;
END""",
    ]


POSTGRES_FUNCTION = """CREATE FUNCTION dockyard_count_namespace_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  ns text;
  sz bigint;
  n integer;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT split_part(name, '/', 1) INTO ns FROM repositories WHERE id = NEW.repository_id;
    IF TG_TABLE_NAME = 'manifests' THEN
      sz := NEW.size;
    ELSE
      SELECT size INTO sz FROM blobs WHERE digest = NEW.digest;
    END IF;
    INSERT INTO namespace_blobs (namespace, digest, size, links)
      VALUES (ns, NEW.digest, COALESCE(sz, 0), 1)
      ON CONFLICT (namespace, digest) DO UPDATE SET links = namespace_blobs.links + 1
      RETURNING links, size INTO n, sz;
    IF n = 1 THEN
      INSERT INTO namespace_usage (namespace, shard, bytes) VALUES (ns, right(NEW.digest, 1), sz)
        ON CONFLICT (namespace, shard) DO UPDATE SET bytes = namespace_usage.bytes + EXCLUDED.bytes;
    END IF;
    RETURN NEW;
  END IF;
  SELECT split_part(name, '/', 1) INTO ns FROM repositories WHERE id = OLD.repository_id;
  UPDATE namespace_blobs SET links = links - 1
    WHERE namespace = ns AND digest = OLD.digest
    RETURNING links, size INTO n, sz;
  IF n IS NOT NULL AND n <= 0 THEN
    DELETE FROM namespace_blobs WHERE namespace = ns AND digest = OLD.digest;
    UPDATE namespace_usage SET bytes = bytes - sz
      WHERE namespace = ns AND shard = right(OLD.digest, 1);
  END IF;
  RETURN OLD;
END
$$"""


def _backfill(namespace_of: str, last_character: str) -> list[str]:
    return [
        f"""INSERT INTO namespace_blobs (namespace, digest, size, links)
SELECT ns, digest, MAX(size), COUNT(*) FROM (
  SELECT {namespace_of} AS ns, rb.digest AS digest, b.size AS size
    FROM repository_blobs rb
    JOIN repositories r ON r.id = rb.repository_id
    JOIN blobs b ON b.digest = rb.digest
  UNION ALL
  SELECT {namespace_of}, m.digest, m.size
    FROM manifests m JOIN repositories r ON r.id = m.repository_id
) AS content GROUP BY ns, digest""",
        f"""INSERT INTO namespace_usage (namespace, shard, bytes)
SELECT namespace, {last_character}, SUM(size) FROM namespace_blobs
GROUP BY namespace, {last_character}""",
    ]


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[n] for n in TABLES])
    if bind.dialect.name == "postgresql":
        statements = _backfill("split_part(r.name, '/', 1)", "right(digest, 1)")
        statements.append(POSTGRES_FUNCTION)
        statements += [
            f"CREATE TRIGGER {table}_count AFTER INSERT OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION dockyard_count_namespace_usage()"
            for table in COUNTED
        ]
    else:
        statements = _backfill(
            "CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) "
            "ELSE r.name END",
            "substr(digest, -1)",
        )
        for table in COUNTED:
            statements += _sqlite_triggers(table)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in COUNTED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count ON {table}")
        op.execute("DROP FUNCTION IF EXISTS dockyard_count_namespace_usage()")
    else:
        for table in COUNTED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_in")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_out")
    metadata.drop_all(bind, tables=[metadata.tables[n] for n in TABLES])
