"""Small functions that make what the tests need, shared by every test folder.

- files: the repository root, random files, a folder's digests
- datasets: datasets and versions pushed through the real services, the page data
- personas: the people of the tests and their role groups
- store: damaging stored bytes on purpose
- retention: the simulated calendar, default policies, the hand-worked cost scenario
- forgery: a hostile client speaking the API by hand
- api: the API in process, as a persona
- metrics: a Prometheus scrape, parsed
- browser: signing in and screenshots in Chromium

Fixtures stay in conftest.py files; processes and services are in tests/workers.py.
"""
