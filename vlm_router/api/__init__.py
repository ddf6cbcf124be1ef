"""The HTTP layer: OpenAI schema, errors, routes."""
