"""Where applications read their keys: AWS Secrets Manager (and Vault KV v2), behind `rotator.plugin.store.Store`."""
