"""Configuration: the schema (``schema``), loading from YAML (``load``) and validation (``validate``)."""

from sidecar.config.load import config_from_mapping, explain, load_config
from sidecar.config.schema import (
    REPO_ROOT,
    AuditConfig,
    BackendConfig,
    ClassifierConfig,
    Config,
    ConsoleConfig,
    IdentityConfig,
    KeystoneConfig,
    LimitsConfig,
    LockStoreConfig,
    PolicyConfig,
    ServerConfig,
    ServiceAuthConfig,
    ShippingConfig,
    TargetConfig,
    TlsConfig,
)

__all__ = [
    "REPO_ROOT",
    "AuditConfig",
    "BackendConfig",
    "ClassifierConfig",
    "Config",
    "ConsoleConfig",
    "IdentityConfig",
    "KeystoneConfig",
    "LimitsConfig",
    "LockStoreConfig",
    "PolicyConfig",
    "ServerConfig",
    "ServiceAuthConfig",
    "ShippingConfig",
    "TargetConfig",
    "TlsConfig",
    "config_from_mapping",
    "explain",
    "load_config",
]
