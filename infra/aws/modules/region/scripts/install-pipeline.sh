#!/usr/bin/env bash
# EMR bootstrap action (runs on every node before applications start).
# Installs Python 3.11, apache-beam and the pipeline package into /opt/beam-venv and runs
# a Beam Python worker pool on localhost:PORT, which Flink TaskManagers reach through
# --environment_type=EXTERNAL --environment_config=localhost:PORT.
#
# Usage: install-pipeline.sh s3://BUCKET/emr/artifacts/PACKAGE.whl BEAM_VERSION PORT
set -euo pipefail

WHEEL_URI="${1:?wheel S3 URI required}"
BEAM_VERSION="${2:?Beam version required}"
PORT="${3:?worker pool port required}"
VENV=/opt/beam-venv

sudo dnf install -y python3.11 python3.11-pip
sudo python3.11 -m venv "$VENV"
sudo "$VENV/bin/pip" install --upgrade pip wheel

WORK=$(mktemp -d)
aws s3 cp "$WHEEL_URI" "$WORK/"
WHEEL="$WORK/$(basename "$WHEEL_URI")"
sudo "$VENV/bin/pip" install "apache-beam[aws]==${BEAM_VERSION}" "${WHEEL}[aws]"
sudo "$VENV/bin/pip" check

sudo tee /etc/systemd/system/beam-worker-pool.service >/dev/null <<UNIT
[Unit]
Description=Beam Python SDK worker pool for the Flink TaskManagers
After=network-online.target

[Service]
ExecStart=${VENV}/bin/python -m apache_beam.runners.worker.worker_pool_main --service_port=${PORT}
Restart=always
RestartSec=5
User=hadoop

[Install]
WantedBy=multi-user.target
UNIT
sudo systemctl daemon-reload
sudo systemctl enable --now beam-worker-pool.service
