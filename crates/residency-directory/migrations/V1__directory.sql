-- Residency's tenant directory (issue 16).
--
-- The constraints refuse what is structurally wrong (a bad id, strict without
-- a locality, a bucket owned twice, a key that is both a tenant key and a
-- service key). Region and feature ids are NOT checked here: the policy
-- decides, and a row naming what the policy does not declare is refused for
-- that tenant alone when it is loaded.
--
-- Every change fires pg_notify('residency_directory', json) naming what
-- changed, so each replica's cache drops it at once.

CREATE TABLE tenants (
    id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    -- A stable number per tenant, the same in every replica (the handle a
    -- looked-up tenant carries); an import in file order numbers tenants as
    -- the file does.
    handle integer GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0) UNIQUE,
    locality text,
    strict boolean NOT NULL DEFAULT false,
    features text[] NOT NULL DEFAULT '{}',
    -- Deferrable, so that one import can swap two tenants' buckets.
    bucket text NOT NULL CONSTRAINT tenants_bucket_key UNIQUE DEFERRABLE INITIALLY IMMEDIATE,
    migrating_from text,
    migrated_from text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT strict OR locality IS NOT NULL)
);

CREATE TABLE keys (
    access_key text PRIMARY KEY,
    tenant_id text REFERENCES tenants (id) ON DELETE CASCADE,
    service boolean NOT NULL DEFAULT false,
    -- XChaCha20-Poly1305 under the key-encryption key kek_id (the first 16
    -- hex digits of its SHA-256), the access key as associated data.
    secret_nonce bytea NOT NULL CHECK (length(secret_nonce) = 24),
    secret_sealed bytea NOT NULL,
    kek_id text NOT NULL,
    CHECK (service = (tenant_id IS NULL)),
    UNIQUE (access_key, service)
);
CREATE INDEX keys_tenant_id ON keys (tenant_id);
CREATE INDEX keys_kek_id ON keys (kek_id);

CREATE TABLE service_key_tenants (
    access_key text REFERENCES keys (access_key) ON DELETE CASCADE,
    tenant_id text REFERENCES tenants (id) ON DELETE CASCADE,
    -- Only a service key names tenants here.
    service boolean NOT NULL DEFAULT true CHECK (service),
    PRIMARY KEY (access_key, tenant_id),
    FOREIGN KEY (access_key, service) REFERENCES keys (access_key, service) ON DELETE CASCADE
);
CREATE INDEX service_key_tenants_tenant_id ON service_key_tenants (tenant_id);

CREATE FUNCTION residency_directory_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER tenants_touch BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION residency_directory_touch();

CREATE FUNCTION residency_directory_notify_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('residency_directory',
            json_build_object('tenant', OLD.id, 'bucket', OLD.bucket)::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('residency_directory',
            json_build_object('tenant', NEW.id, 'bucket', NEW.bucket)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION residency_directory_notify_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('residency_directory', json_build_object('key', OLD.access_key)::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('residency_directory', json_build_object('key', NEW.access_key)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION residency_directory_notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('residency_directory', json_build_object('all', true)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION residency_directory_notify_tenant();
CREATE TRIGGER keys_notify AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION residency_directory_notify_key();
CREATE TRIGGER service_key_tenants_notify AFTER INSERT OR UPDATE OR DELETE ON service_key_tenants
    FOR EACH ROW EXECUTE FUNCTION residency_directory_notify_key();
CREATE TRIGGER tenants_truncate AFTER TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION residency_directory_notify_all();
CREATE TRIGGER keys_truncate AFTER TRUNCATE ON keys
    FOR EACH STATEMENT EXECUTE FUNCTION residency_directory_notify_all();
CREATE TRIGGER service_key_tenants_truncate AFTER TRUNCATE ON service_key_tenants
    FOR EACH STATEMENT EXECUTE FUNCTION residency_directory_notify_all();
