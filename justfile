# Everyday commands. `just --list` shows them.

# Lints as CI runs them (determinism bans in clippy.toml).
check:
    cargo clippy --workspace --all-targets -- -D warnings

# Every test: unit, property, snapshot and harness tests.
test:
    cargo test --workspace

# The scenario catalog, every scenario over its own seed count.
sim *ARGS:
    cargo run --release -- run scenarios/ {{ARGS}}

# One seed in full detail, with its report: `just repro scenarios/smoke.toml 3`.
repro SCENARIO SEED:
    cargo run --release -- repro {{SCENARIO}} --seed {{SEED}}

# Run seeds twice and compare traces.
meta SCENARIO SEEDS="5":
    cargo run --release -- meta {{SCENARIO}} --seeds {{SEEDS}}

# How fast seeds run, per engine, with the bare-engine baseline and scaling series (README, Performance).
bench *ARGS:
    cargo run --release -- bench {{ARGS}}
