"""The `switchboard` click commands, one module per command family."""
