#!/usr/bin/env bash
# HDInsight 5.1 script action: Flink on YARN for Beam's FlinkRunner, plus a Beam Python
# worker pool on every node (shared by the FlinkRunner and the SparkRunner).
#
# Runs on head and worker nodes at cluster creation (and on every new worker).
#   $1 Flink release to install (1.19.x: a version the Beam FlinkRunner supports)
#   $2 apache-beam version (equal to BEAM_VERSION in setup.py)
#   $3 URL of the pipeline wheel (SAS URL into the cluster's storage account)
#   $4 port of the Beam worker pool (environment_config=localhost:PORT)
#   $5 Flink task slots per TaskManager
set -euo pipefail

FLINK_VERSION="${1:?Flink version required}"
BEAM_VERSION="${2:?Beam version required}"
WHEEL_URL="${3:?wheel URL required}"
PORT="${4:?worker pool port required}"
SLOTS="${5:-2}"
VENV=/opt/beam-venv
FLINK_HOME=/opt/flink

# --- every node: Python 3.11, Beam and the pipeline, worker pool ---------------------
if [ ! -x "$VENV/bin/python" ]; then
  curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh
  /usr/local/bin/uv venv --python 3.11 "$VENV"
fi
WORK=$(mktemp -d)
WHEEL_NAME=$(basename "${WHEEL_URL%%\?*}")
curl -fsSL -o "$WORK/$WHEEL_NAME" "$WHEEL_URL"
/usr/local/bin/uv pip install --python "$VENV/bin/python" \
  "apache-beam[azure]==${BEAM_VERSION}" "$WORK/${WHEEL_NAME}[azure]"
"$VENV/bin/python" -m pip check 2>/dev/null || /usr/local/bin/uv pip check --python "$VENV/bin/python"

cat > /etc/systemd/system/beam-worker-pool.service <<UNIT
[Unit]
Description=Beam Python SDK worker pool for Flink and Spark executors
After=network-online.target

[Service]
ExecStart=${VENV}/bin/python -m apache_beam.runners.worker.worker_pool_main --service_port=${PORT}
Restart=always
RestartSec=5
User=yarn

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now beam-worker-pool.service

# --- head nodes: Flink distribution; the first head node starts the YARN session -----
case "$(hostname -s)" in
  hn*) ;;
  *) exit 0 ;;
esac

if [ ! -d "$FLINK_HOME" ]; then
  curl -fsSL -o "$WORK/flink.tgz" \
    "https://archive.apache.org/dist/flink/flink-${FLINK_VERSION}/flink-${FLINK_VERSION}-bin-scala_2.12.tgz"
  tar -xzf "$WORK/flink.tgz" -C /opt
  ln -sfn "/opt/flink-${FLINK_VERSION}" "$FLINK_HOME"
fi

DEFAULT_FS=$(hdfs getconf -confKey fs.defaultFS)
cat >> "$FLINK_HOME/conf/flink-conf.yaml" <<CONF
taskmanager.numberOfTaskSlots: ${SLOTS}
state.backend.type: rocksdb
state.backend.incremental: true
state.checkpoints.dir: ${DEFAULT_FS}/flink/checkpoints
state.savepoints.dir: ${DEFAULT_FS}/flink/savepoints
execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
restart-strategy.type: exponential-delay
classloader.resolve-order: parent-first
CONF

# Only headnode 0 starts the session; the other head node keeps the distribution ready.
if [ "$(hostname -s | cut -c1-3)" != "hn0" ]; then
  exit 0
fi

export HADOOP_CLASSPATH
HADOOP_CLASSPATH=$(hadoop classpath)
sudo -E -u yarn "$FLINK_HOME/bin/yarn-session.sh" -d -nm beam-flink-session -s "$SLOTS"

APP_ID=""
for _ in $(seq 1 60); do
  APP_ID=$(yarn application -list -appStates RUNNING 2>/dev/null | awk '/beam-flink-session/ {print $1; exit}')
  [ -n "$APP_ID" ] && break
  sleep 5
done
if [ -z "$APP_ID" ]; then
  echo "Flink YARN session did not reach RUNNING within 5 minutes" >&2
  exit 1
fi

# Published for `--flink_master` (reach port 8088 through an SSH tunnel, docs/runners.md).
echo "http://localhost:8088/proxy/${APP_ID}" > "$WORK/flink-master.txt"
hdfs dfs -mkdir -p /flink
hdfs dfs -put -f "$WORK/flink-master.txt" /flink/flink-master.txt
