"""Workflows: the operator's HTTP tools, called at every moment of a call through one bounded client."""
