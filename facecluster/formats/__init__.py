"""Formats other tools read: Parquet tables and XMP sidecars (see each module)."""
