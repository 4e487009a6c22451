-- Key ranges of one tenant migration (issue 16, item 6): a large tenant is
-- shared by several workers on several machines. The run that holds the
-- tenant's lease (migration_leases) lists the source region and writes a
-- range every N keys; any worker (`residency migrate --join`) leases a
-- pending range (SELECT ... FOR UPDATE SKIP LOCKED), renews `expires_at`
-- while it copies and verifies the range's keys, journals them in the
-- destination under the range's own cursor, and marks it done. A range
-- whose holder died expires and is taken over by another worker, which
-- resumes from that range's journal.
--
-- No trigger notifies on this table: sidecars do not read it.

CREATE TABLE migration_ranges (
    tenant_id text NOT NULL,
    -- The migration's id in its journal (`<unix>-<from>-to-<to>`).
    migration_id text NOT NULL,
    -- The source region whose keys the range covers.
    region text NOT NULL,
    range_no integer NOT NULL CHECK (range_no >= 0),
    -- Keys after this one (exclusive; '' for the first range) ...
    start_after text NOT NULL,
    -- ... up to this one (inclusive; NULL for the last range, which also
    -- marks the region's plan as complete).
    end_key text,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    -- The worker leasing it (host, process id, random suffix) and until when.
    holder text,
    expires_at timestamptz,
    -- Who finished it, when, and what it did (objects with an outcome,
    -- objects whose bytes it copied).
    done_by text,
    done_at timestamptz,
    objects bigint,
    copied bigint,
    PRIMARY KEY (tenant_id, migration_id, region, range_no),
    -- (Keys compare as S3 lists them: bytewise.)
    CHECK (end_key IS NULL OR end_key COLLATE "C" > start_after COLLATE "C")
);
