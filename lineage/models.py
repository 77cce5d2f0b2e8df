"""Lineage models arrive with the lineage issue; the app exists so the layout is whole."""
