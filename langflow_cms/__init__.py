"""langflow-cms."""
