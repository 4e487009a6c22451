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
