"""Small helpers shared by the end-to-end tests."""

from botocore.exceptions import ClientError

# Tenant keys from config/tenants.example.toml.
TENANT_KEYS = {
    "acme": ("ACMEEXAMPLEKEY", "acme-example-secret-key-change-me"),
    "globex": ("GLOBEXEXAMPLEKEY", "globex-example-secret-key-change-me"),
    "initech": ("INITECHEXAMPLEKEY", "initech-example-secret-key-change-me"),
    "eurobank": ("EUROBANKEXAMPLEKEY", "eurobank-example-secret-key-change-me"),
    "appserver": ("APPSERVEREXAMPLEKEY", "appserver-example-secret-key-change-me"),
}


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def error_message(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Message", "")


def http_status(exc: ClientError) -> int:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def remove_bucket(client, bucket: str) -> None:
    """Empties and deletes a bucket a test created (gone already: nothing)."""
    try:
        for o in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=o["Key"])
        client.delete_bucket(Bucket=bucket)
    except ClientError:
        pass
