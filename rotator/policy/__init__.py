"""What a policy is: its rules (max_age, cutover, notifications, window) and rotation windows, as
values every room reads; the policy files that declare them are read in `rotator.settings`."""
