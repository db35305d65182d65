"""What rotator.yaml and the policy files hold and how they are read: the settings models and their
loading (config.py), the policy files and their checks against rotator.yaml and a team (policies.py,
policy_models.py, policy_checks.py), teams (tenancy.py), and the generated reference (reference.py)."""
