"""Local simulators of the providers, for trying rotator out and for its tests (never for production)."""
