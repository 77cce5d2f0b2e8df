"""Services: every change of state in the catalog goes through a function here.

Each is keyword-only, runs in a transaction and writes an audit event. Views, API
endpoints, management commands and Celery tasks call them and render the result.
"""
