"""Switchboard tests: behaviour through real peers; support code lives in tests.support."""
