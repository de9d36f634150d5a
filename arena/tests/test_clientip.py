"""Client addresses through trusted proxies only, and the salted hash (arena/abuse/clientip.py)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory

from arena.abuse.clientip import TrustedProxyMiddleware, client_ip, ip_hash, scope_client_ip


class TestClientIp:
    def test_without_trusted_proxies_the_header_is_ignored(self):
        assert client_ip("203.0.113.9", "198.51.100.1", trusted="") == "203.0.113.9"

    def test_one_trusted_hop_takes_the_address_that_proxy_saw(self):
        # The client forged the left entry; the proxy appended the real one on the right.
        assert client_ip("10.0.0.2", "6.6.6.6, 198.51.100.7", trusted="1") == "198.51.100.7"

    def test_two_trusted_hops(self):
        assert client_ip("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.5", trusted="2") == "198.51.100.7"

    def test_more_hops_than_the_chain_has_stops_at_its_left_end(self):
        assert client_ip("10.0.0.2", "198.51.100.7", trusted="5") == "198.51.100.7"

    def test_cidrs_walk_the_chain_from_the_right_past_trusted_networks(self):
        trusted = "10.0.0.0/8, 2001:db8::/32"
        assert client_ip("10.0.0.2", "6.6.6.6, 198.51.100.7, 2001:db8::5", trusted=trusted) == "198.51.100.7"

    def test_a_peer_outside_the_trusted_networks_is_the_client_whatever_it_claims(self):
        assert client_ip("203.0.113.9", "198.51.100.7", trusted="10.0.0.0/8") == "203.0.113.9"

    def test_a_malformed_entry_stops_the_walk(self):
        assert client_ip("10.0.0.2", "198.51.100.7, not-an-ip", trusted="10.0.0.0/8") == "10.0.0.2"

    def test_ports_are_dropped(self):
        assert client_ip("10.0.0.2", "198.51.100.7:4444", trusted="1") == "198.51.100.7"
        assert client_ip("10.0.0.2", "[2001:db8::9]:4444", trusted="1") == "2001:db8::9"

    def test_a_bad_setting_is_a_clear_error(self):
        with pytest.raises(ImproperlyConfigured, match="ARENA_TRUSTED_PROXIES"):
            client_ip("10.0.0.2", "198.51.100.7", trusted="10.0.0.0/99")


class TestScopesAndRequests:
    def test_websocket_scopes_use_the_same_rule(self, settings):
        settings.ARENA_TRUSTED_PROXIES = "1"
        scope = {"client": ["10.0.0.2", 5555], "headers": [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7")]}
        assert scope_client_ip(scope) == "198.51.100.7"
        settings.ARENA_TRUSTED_PROXIES = ""
        assert scope_client_ip(scope) == "10.0.0.2"

    def test_the_middleware_rewrites_remote_addr_for_django(self, settings):
        settings.ARENA_TRUSTED_PROXIES = "1"
        seen = {}

        def view(request):
            seen["ip"] = request.META["REMOTE_ADDR"]
            return HttpResponse()

        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
        TrustedProxyMiddleware(view)(request)
        assert seen["ip"] == "198.51.100.7"

    def test_the_hash_is_salted_and_never_the_address(self, settings):
        settings.ARENA_IP_SALT = "one"
        first = ip_hash("198.51.100.7")
        settings.ARENA_IP_SALT = "two"
        assert ip_hash("198.51.100.7") != first and "198.51.100.7" not in first and len(first) == 64
        assert ip_hash(None) == "" and ip_hash("") == ""


class TestIpv6Networks:
    def test_addresses_in_one_ipv6_network_share_a_hash(self, settings):
        settings.ARENA_IPV6_PREFIX = 64
        one, two = ip_hash("2001:db8:1:2::1"), ip_hash("2001:db8:1:2:ffff:ffff:ffff:ffff")
        assert one == two and ip_hash("2001:db8:1:3::1") != one
        assert ip_hash("[2001:db8:1:2::9]:443") == one

    def test_the_prefix_is_a_setting(self, settings):
        settings.ARENA_IPV6_PREFIX = 128
        assert ip_hash("2001:db8:1:2::1") != ip_hash("2001:db8:1:2::2")
        settings.ARENA_IPV6_PREFIX = 48
        assert ip_hash("2001:db8:1:2::1") == ip_hash("2001:db8:1:ffff::2")

    def test_ipv4_and_ipv4_mapped_addresses_keep_one_key_each(self, settings):
        assert ip_hash("::ffff:198.51.100.7") == ip_hash("198.51.100.7") != ip_hash("198.51.100.8")
        assert ip_hash("not an address") != ip_hash("198.51.100.7")  # hashed as given, never an error
