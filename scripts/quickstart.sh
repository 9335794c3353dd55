#!/usr/bin/env bash
# Set up the environment and run the main job on the embedded default: prepare data (the real
# datasets in ../shared/data when present, else the synthetic generator), apply and materialize
# the Feast features, train and register both models, write the off-boarding list, then serve.
source "$(dirname "$0")/env.sh"
exec leadrisk quickstart "$@"
