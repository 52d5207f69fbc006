"""Test support: real peers (Redis, SMTP, HTTP), the controller and simulator harnesses, capture readers."""
