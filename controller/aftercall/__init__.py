"""After the call: the worker (consumer group, retries, dead letters), classification, email, the jobs queue."""
