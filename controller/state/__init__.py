"""Call state in Redis, the spool that keeps records when Redis is away, and the embedded redis-server."""
