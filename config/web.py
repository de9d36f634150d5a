"""Run daphne with an access log that never writes a raw client address.

``python -m config.web [daphne arguments]`` is ``daphne`` except that each access-log line
starts with ``ip:`` and the first 16 hex digits of the salted hash (arena/abuse/clientip.py) of the
peer address (behind a proxy, the proxy's), instead of ``ip:port``. ``make run`` and
docker-compose start the web process this way.
"""

from __future__ import annotations

import sys

from daphne import cli
from daphne.access import AccessLogGenerator


class HashedAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
        from arena.abuse.clientip import ip_hash  # settings are loaded with the application

        address = host[0] if isinstance(host, (list, tuple)) and host else host
        super().write_entry(f"ip:{ip_hash(address)[:16] or '-'}", date, request, status, length, ident, user)


def main(argv: list[str]) -> None:
    cli.AccessLogGenerator = HashedAccessLog  # the CLI builds its access logger from this name
    cli.CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
