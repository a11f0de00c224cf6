# Recipes for people who use `just`; each is a thin alias of `./dev` (which needs nothing but Python and pip).

# the embedded stack: nats-server + Postgres from PyPI wheels, the five services, one worker
up *ARGS:
    ./dev up {{ARGS}}

# ruff, mypy, import-linter, then the whole test suite (what .ci/run runs)
test *ARGS:
    ./dev test {{ARGS}}

# the linters only
lint:
    ./dev lint

# a benchmark scenario of bench/run.py against a private stack, e.g. `just bench burst --jobs 100`
bench *ARGS:
    ./dev venv >/dev/null && .venv/bin/python bench/run.py {{ARGS}}

# rebuild a read model from the event log and compare it with the live one
rebuild SERVICE:
    ./dev venv >/dev/null && .venv/bin/xrunner projections rebuild {{SERVICE}}
