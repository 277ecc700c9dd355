"""Tag history: where each tag pointed and when, for the `_dockyard/tag-history` extension.

Database triggers on `tags` write it, as the usage counters of 0009 are kept: every insert, every
move to another manifest and every delete of a tag (cascades included) adds an entry in the same
transaction, whatever code path did it. An entry repeating the tag's newest one is skipped (a
copy by `dockyard migrate` inserts the history before the tags), and only the newest
`TAG_HISTORY_KEPT` entries of a tag are kept. Existing tags start their history now.

Revision ID: 0013
Revises: 0010 (re-chained after 0012 at merge)
"""

from alembic import op

from dockyard.metadata.schema import TAG_HISTORY_KEPT, metadata

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def _sqlite_entry(row: str, digest: str, at: str) -> str:
    """An entry unless it repeats the newest (with no history yet, a delete repeats it)."""
    repository = f"(SELECT name FROM repositories WHERE id = {row}.repository_id)"
    return f"""  INSERT INTO tag_history (repository, tag, digest, changed_at)
    SELECT {repository}, {row}.name, {digest}, {at}
    WHERE {repository} IS NOT NULL
      AND {digest} IS NOT (SELECT digest FROM tag_history
                           WHERE repository = {repository} AND tag = {row}.name
                           ORDER BY id DESC LIMIT 1);
  DELETE FROM tag_history WHERE repository = {repository} AND tag = {row}.name
    AND id <= (SELECT id FROM tag_history WHERE repository = {repository} AND tag = {row}.name
               ORDER BY id DESC LIMIT 1 OFFSET {TAG_HISTORY_KEPT});"""


SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER tags_history_in AFTER INSERT ON tags BEGIN
{_sqlite_entry("NEW", "NEW.manifest_digest", "NEW.updated_at")}
END""",
    f"""CREATE TRIGGER tags_history_moved AFTER UPDATE OF manifest_digest ON tags
WHEN OLD.manifest_digest IS NOT NEW.manifest_digest BEGIN
{_sqlite_entry("NEW", "NEW.manifest_digest", "NEW.updated_at")}
END""",
    f"""CREATE TRIGGER tags_history_out AFTER DELETE ON tags BEGIN
{_sqlite_entry("OLD", "NULL", SQLITE_NOW)}
END""",
]

POSTGRES_FUNCTION = f"""CREATE FUNCTION dockyard_tag_history() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  repo text;
  tag_name text;
  new_digest text;
  at double precision;
  newest_id integer;
  newest text;
BEGIN
  IF TG_OP = 'DELETE' THEN
    SELECT name INTO repo FROM repositories WHERE id = OLD.repository_id;
    tag_name := OLD.name;
    new_digest := NULL;
    at := extract(epoch from clock_timestamp());
  ELSE
    IF TG_OP = 'UPDATE' AND OLD.manifest_digest = NEW.manifest_digest THEN
      RETURN NEW;
    END IF;
    SELECT name INTO repo FROM repositories WHERE id = NEW.repository_id;
    tag_name := NEW.name;
    new_digest := NEW.manifest_digest;
    at := NEW.updated_at;
  END IF;
  IF repo IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT id, digest INTO newest_id, newest FROM tag_history
    WHERE repository = repo AND tag = tag_name ORDER BY id DESC LIMIT 1;
  IF newest_id IS NULL AND new_digest IS NULL THEN
    RETURN NULL;
  END IF;
  IF newest_id IS NOT NULL AND newest IS NOT DISTINCT FROM new_digest THEN
    RETURN NULL;
  END IF;
  INSERT INTO tag_history (repository, tag, digest, changed_at)
    VALUES (repo, tag_name, new_digest, at);
  DELETE FROM tag_history WHERE repository = repo AND tag = tag_name
    AND id <= (SELECT id FROM tag_history WHERE repository = repo AND tag = tag_name
               ORDER BY id DESC OFFSET {TAG_HISTORY_KEPT} LIMIT 1);
  RETURN NULL;
END
$$"""


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables["tag_history"]])
    op.execute(
        "INSERT INTO tag_history (repository, tag, digest, changed_at) "
        "SELECT r.name, t.name, t.manifest_digest, t.updated_at "
        "FROM tags t JOIN repositories r ON r.id = t.repository_id"
    )
    if bind.dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER tags_history AFTER INSERT OR UPDATE OR DELETE ON tags "
            "FOR EACH ROW EXECUTE FUNCTION dockyard_tag_history()"
        )
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tags_history ON tags")
        op.execute("DROP FUNCTION IF EXISTS dockyard_tag_history()")
    else:
        for name in ("tags_history_in", "tags_history_moved", "tags_history_out"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["tag_history"]])
