"""The configuration: pydantic models per area, YAML with line numbers, checks, errors that name the fix.

Nothing is re-exported here: import from the module that defines a name (`controller.config.load.load_config`,
`controller.config.errors.ConfigError`, `controller.config.schema.Config`), so each import says where it lives.
"""
