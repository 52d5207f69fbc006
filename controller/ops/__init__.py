"""What an operator watches: Prometheus metrics and the health check of a running `serve`."""
