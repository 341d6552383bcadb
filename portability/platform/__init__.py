"""The built-in platform store: each category's current records and the ordered change feed."""
