"""Operator tools: everything a person runs against CMS or Langflow; the runtime never imports this."""
