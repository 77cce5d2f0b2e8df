"""Strata's content-addressed store: chunking, packs and object backends.

Plain Python with no Django imports, so that the store can be tested, benchmarked
and reused (by the API client, by tools) without a settings module. The catalog
layer above owns the chunk index (which pack holds which chunk) in its database;
this package only knows how to cut, name, pack, write and verify bytes.
"""
