#!/bin/sh
# tests/run.sh's RUSTC_WORKSPACE_WRAPPER: the workspace's crates compile through clippy's driver
# (rustc with clippy's lints) with every warning an error; dependencies keep cargo's own flags.
exec clippy-driver "$@" -D warnings
