"""The operator's view of a running gateway: /healthz, /readyz and /metrics over HTTP."""
