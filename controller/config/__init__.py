"""The configuration: pydantic models per area, YAML with line numbers, checks, errors that name the fix."""
