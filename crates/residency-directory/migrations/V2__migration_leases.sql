-- A lease per tenant migration (issue 16, item 6): one `residency migrate`
-- at a time per tenant, whichever machine runs it. The holder renews
-- `expires_at` while it runs and deletes the row at the end; a holder that
-- died leaves a row that expires, and the next run takes it over.
--
-- No trigger notifies on this table: sidecars do not read it.

CREATE TABLE migration_leases (
    tenant_id text PRIMARY KEY,
    -- Who holds it: host, process id and a random suffix, for the message a
    -- second migrator prints.
    holder text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
