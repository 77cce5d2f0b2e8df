"""Operating Strata: structured logs, Prometheus metrics, and health probes."""
