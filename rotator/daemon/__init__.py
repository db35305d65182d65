"""The long-running service: scheduler, health and metrics server, systemd notify."""
