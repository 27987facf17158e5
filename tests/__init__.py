"""The test suite, a package: test modules in folders mirroring closetai/ (tests.web.test_web, ...), the
fixtures they share in conftest.py and their helpers in tests/*helpers.py."""
