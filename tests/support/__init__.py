"""Test support: real peers (Redis, SMTP, HTTP), the controller and simulator harnesses, capture readers.
fake_context.py: the scripted ActionContext that unit tests of one during-call action run against."""
