#!/usr/bin/env bash
# EMR step (runs on the primary node): starts a detached Flink session on YARN and
# publishes its REST address for `--flink_master`, reached through the YARN web proxy:
#   http://PRIMARY_DNS:20888/proxy/APPLICATION_ID
#
# Usage: start-flink-session.sh s3://BUCKET/emr/flink-master.txt TASK_SLOTS
set -euo pipefail

TARGET="${1:?S3 URI for the Flink master address required}"
SLOTS="${2:?task slots per TaskManager required}"

flink-yarn-session -d -nm beam-flink-session -s "$SLOTS"

APP_ID=""
for _ in $(seq 1 60); do
  APP_ID=$(yarn application -list -appStates RUNNING 2>/dev/null | awk '/beam-flink-session/ {print $1; exit}')
  if [ -n "$APP_ID" ]; then
    break
  fi
  sleep 5
done
if [ -z "$APP_ID" ]; then
  echo "Flink YARN session did not reach RUNNING within 5 minutes" >&2
  exit 1
fi

PRIMARY_DNS=$(hostname -f)
echo "http://${PRIMARY_DNS}:20888/proxy/${APP_ID}" | aws s3 cp - "$TARGET"
