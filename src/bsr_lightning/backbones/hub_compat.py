"""The one place that reaches into huggingface_hub's internals: its HTTP client has no timeout by default
(``timeout=None`` in ``huggingface_hub.utils._http.default_client_factory``, 2.x), and there is no public getter of
that factory to wrap. :func:`bounded_client_factory` builds the same client with connect and read timeouts, for
``set_client_factory`` (public). ``tests/test_hub.py`` pins it."""

from __future__ import annotations

from collections.abc import Callable


def bounded_client_factory(connect: float = 10.0, read: float = 60.0) -> Callable:
    """A client factory like huggingface_hub's default (same event hooks, redirects), whose requests give up after
    ``connect`` seconds to connect and ``read`` seconds without a byte."""
    from huggingface_hub.utils import _http

    def factory():
        client = _http.default_client_factory()
        client.timeout = type(client.timeout)(read, connect=connect)
        return client

    return factory
