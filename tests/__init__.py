"""The syncd test suite.

- ``unit/`` mirrors the syncd package (``tests/unit/core`` tests ``syncd/core``, ...);
- ``integration/`` needs the real local Kafka broker (``tests/conftest.py`` starts it);
- ``sandbox/`` drives the marketplace sandboxes; ``deploy/`` checks the deployment files
  and the docs; ``bench/`` the benchmarks' pure parts;
- ``fixtures/`` holds the shared helpers; no test module imports from another.
"""
