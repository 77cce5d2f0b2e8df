"""Importers that turn other tools' lineage (OpenLineage events, DVC projects) into runs."""
