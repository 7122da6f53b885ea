"""Shared fixtures. Unit tests need nothing; integration fixtures live in tests/integration/."""


def pytest_addoption(parser):
    parser.addoption("--faults", action="store_true", default=False,
                     help="run the whole fault suite (tests marked `faults`; `make faults`), "
                          "not only its quick subset")
