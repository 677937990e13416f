-- 001_init: the baseline the later migrations build on.
--
-- Migrations are applied by src/db/migrate.c in name order, each once,
-- each in its own transaction (so no BEGIN/COMMIT here, and nothing that
-- cannot run in a transaction block), under an advisory lock, and recorded
-- in schema_migrations, which migrate.c creates itself.
--
-- This first one holds no business tables: the agent registry and the
-- analytics rollups come with their issues. It creates the one thing every
-- later piece can rely on: a row that says which database this is.
-- Several Ringside instances may share one PostgreSQL (DESIGN.md), and the
-- count journal an instance keeps through an outage must be replayed into
-- the database it was meant for and no other: the journal records
-- database_id, and replay compares it with this row. /ready can read the
-- row too (a database that answers and holds Ringside's schema).

CREATE TABLE ringside_meta (
	-- One row at most: the key can only be true.
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	database_id uuid NOT NULL DEFAULT gen_random_uuid(),
	created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO ringside_meta DEFAULT VALUES;
