"""rotator: rotates SaaS API keys without downtime."""

__version__ = "0.1.0"
