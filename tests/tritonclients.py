"""Triton's HTTP client for tests: closed once.

Its ``__del__`` closes it again, and that fails (gevent's InvalidThreadUseError, reported as
an unraisable exception in whichever test runs then) when the garbage collector happens to
run on another thread, such as a LiveServer's.
"""

from __future__ import annotations

import tritonclient.http as triton


class HttpClient(triton.InferenceServerClient):  # type: ignore[misc]
    _closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            super().close()
