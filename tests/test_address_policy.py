"""Workflows and webhooks reach public addresses and loopback; private, link-local (cloud metadata) and other
special addresses only when `webhooks.allow` lists them: at load for a literal address, on the connected address
for a host name."""
from __future__ import annotations

import pytest

from controller.address_policy import AddressPolicy
from controller.workflow.http import request
from tests.support.peers import Reply
from tests.test_config import BASE, only_problem, variant, write

REFUSED = [("169.254.169.254", "link-local"), ("10.0.0.5", "private"), ("192.168.1.1", "private"),
           ("172.16.0.9", "private"), ("100.64.1.1", "shared"), ("fe80::1", "link-local"), ("fd00::1", "private"),
           ("::ffff:10.0.0.1", "private"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast")]


@pytest.mark.parametrize("address, kind", REFUSED)
def test_special_addresses_are_refused_unless_listed(address, kind):
    refusal = AddressPolicy().refusal(address, address)
    assert refusal and kind in refusal and "webhooks.allow" in refusal


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "8.8.8.8", "2001:4860:4860::8888"])
def test_loopback_and_public_addresses_are_allowed(address):
    assert AddressPolicy().refusal(address, address) is None


def test_a_listed_network_or_host_name_is_allowed_and_nothing_else():
    policy = AddressPolicy.from_entries(["10.0.0.0/24", "CRM.internal.", "fd00::/64"])
    assert policy.refusal("10.0.0.7", "10.0.0.7") is None and policy.refusal("10.0.1.7", "10.0.1.7")
    assert policy.refusal("crm.internal", "10.9.9.9") is None  # the operator named the host
    assert "other.internal (10.9.9.9) is a private address" in policy.refusal("other.internal", "10.9.9.9")
    assert policy.refusal("fd00::5", "fd00::5") is None and policy.refusal("fd01::5", "fd01::5")


def test_a_host_name_is_checked_on_the_address_it_connects_to(http_server):
    http_server.then(Reply())
    url = http_server.url.replace("127.0.0.1", "localhost") + "/x"
    assert request("GET", url, timeout_s=5, policy=AddressPolicy()).status == 200  # localhost -> loopback


def test_a_literal_metadata_address_is_refused_at_load_with_the_field_and_the_fix(tmp_path):
    text = variant("    context: default\n", """    context: default
    actions:
      after_call:
        - {type: workflow, name: hook, description: d, request: {url: "http://169.254.169.254/latest/meta-data"}}
""")
    problem = only_problem(write(tmp_path, text))
    assert "request.url: 'http://169.254.169.254/latest/meta-data': 169.254.169.254 is a link-local" in problem
    assert "list the host or its network in webhooks.allow" in problem
    allowed = write(tmp_path, text + "webhooks:\n  allow: [169.254.169.254/32]\n", name="allowed.yaml")
    from controller.config.load import load_config
    assert load_config(allowed)


def test_a_bad_allow_entry_is_refused_with_what_is_allowed(tmp_path):
    problem = only_problem(write(tmp_path, BASE + "webhooks:\n  allow: [\"not a host!\"]\n"))
    assert "webhooks.allow[0]" in problem and "neither a host name, an address nor a CIDR network" in problem
