"""``echotemporal serve``: the correction as an HTTP service (FastAPI + uvicorn) with a review page.

- :mod:`~echotemporal.serve.app` settings, routes, start-up/shutdown (:func:`create_app`);
- :mod:`~echotemporal.serve.jobs` job state, private folders, expiry;
- :mod:`~echotemporal.serve.pool` the worker processes (one model each);
- :mod:`~echotemporal.serve.worker` what runs in a worker (correct, check, draw);
- :mod:`~echotemporal.serve.uploads` streamed multipart uploads with a byte limit;
- :mod:`~echotemporal.serve.errors` the JSON error shape;
- :mod:`~echotemporal.serve.launch` a server as a child process on a free port (benchmark, tests);
- ``static/`` the review page (plain HTML and one script).

Needs the ``serve`` extra (``pip install 'echotemporal[serve]'``).
"""

from __future__ import annotations

from echotemporal.serve.app import MAX_STATUS_WAIT_S, RESULT_FILES, ServeSettings, create_app, run_server

__all__ = ["ServeSettings", "RESULT_FILES", "MAX_STATUS_WAIT_S", "create_app", "run_server"]
