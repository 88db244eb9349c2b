"""The support matrix: Python 3.11-3.13 x Django 5.2, 6.0, 6.1 (Django 6 needs Python >= 3.12)."""

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

# Python 3.11 x Django 5.2 is the main interpreter: `make test` runs the whole
# suite on it, so the matrix covers the other cells.
MATRIX = [
    ("3.12", "5.2"),
    ("3.12", "6.0"),
    ("3.13", "6.0"),
    ("3.13", "6.1"),
    ("3.12", "6.1"),
    ("3.13", "5.2"),
]


@nox.session
@nox.parametrize(("python", "django"), MATRIX)
def tests(session: nox.Session, django: str) -> None:
    session.install("--upgrade", "pip>=25.1")
    # The emulator is a distribution of its own (emulator/): installed beside the app.
    session.install("-e", ".", "-e", "./emulator", "--group", "test", f"django~={django}.0")
    # The fast, database-level suite: end-to-end, browser, reliability and engine
    # runs happen once, on the main interpreter, in .ci/run.
    session.run(
        "pytest",
        "-q",
        "-x",
        "-m",
        "not e2e and not browser and not reliability and not engines and not scale",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )
