-- Buckets tenants create through the sidecar (S3 CreateBucket, issue 17),
-- beside the one bucket each tenant is configured with (tenants.bucket).
--
-- A name is one bucket in the deployment: a created bucket may not take a
-- configured bucket's name, nor the reverse (the triggers below, serialized
-- per name by an advisory lock). Every change notifies
-- {"created_bucket": name} so each replica's cache drops it at once.

CREATE TABLE buckets (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' AND name !~ '\.\.'),
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The LocationConstraint it was created with (a region id of the policy).
    location text,
    -- The category of objects written without one that no key rule classifies.
    default_category text,
    -- Its CORS rules (PutBucketCors), as the sidecar stores them (JSON).
    cors text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX buckets_tenant_id ON buckets (tenant_id);

CREATE FUNCTION residency_created_bucket_name_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('residency-bucket:' || NEW.name));
    IF EXISTS (SELECT 1 FROM tenants WHERE bucket = NEW.name) THEN
        RAISE EXCEPTION 'bucket % is a tenant''s configured bucket', NEW.name
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION residency_configured_bucket_name_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('residency-bucket:' || NEW.bucket));
    IF EXISTS (SELECT 1 FROM buckets WHERE name = NEW.bucket) THEN
        RAISE EXCEPTION 'bucket % was created by tenant %', NEW.bucket,
            (SELECT tenant_id FROM buckets WHERE name = NEW.bucket)
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER buckets_name_free BEFORE INSERT OR UPDATE OF name ON buckets
    FOR EACH ROW EXECUTE FUNCTION residency_created_bucket_name_free();
CREATE TRIGGER tenants_bucket_free BEFORE INSERT OR UPDATE OF bucket ON tenants
    FOR EACH ROW EXECUTE FUNCTION residency_configured_bucket_name_free();

CREATE FUNCTION residency_directory_notify_created_bucket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('residency_directory', json_build_object('created_bucket', OLD.name)::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('residency_directory', json_build_object('created_bucket', NEW.name)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER buckets_notify AFTER INSERT OR UPDATE OR DELETE ON buckets
    FOR EACH ROW EXECUTE FUNCTION residency_directory_notify_created_bucket();
CREATE TRIGGER buckets_truncate AFTER TRUNCATE ON buckets
    FOR EACH STATEMENT EXECUTE FUNCTION residency_directory_notify_all();
