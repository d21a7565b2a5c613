"""Every root and module is complete: files, pinned providers, typed and described inputs."""

from __future__ import annotations

import re

import pytest

from tests.infra import tf

STANDARD_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")


@pytest.mark.parametrize("directory", tf.tf_dirs(), ids=lambda p: str(p.relative_to(tf.INFRA)))
def test_root_and_module_have_the_standard_files(directory):
    missing = [name for name in STANDARD_FILES if not (directory / name).is_file()]
    assert not missing, f"{directory.relative_to(tf.REPO)} lacks {missing}"


@pytest.mark.parametrize("directory", tf.tf_dirs(), ids=lambda p: str(p.relative_to(tf.INFRA)))
def test_provider_major_versions_are_pinned(directory):
    terraform = tf.one(tf.parse(directory / "versions.tf")["terraform"])
    assert "required_version" in terraform
    required = tf.one(terraform["required_providers"])
    assert required, "no required_providers"
    for name, spec in required.items():
        version = spec["version"]
        assert re.fullmatch(r"~> \d+\.\d+", version), f"{name} version {version!r} is not ~> MAJOR.MINOR"


def test_every_tf_file_parses():
    files = tf.tf_files()
    assert len(files) >= 30
    for path in files:
        tf.parse(path)


@pytest.mark.parametrize("directory", tf.tf_dirs(), ids=lambda p: str(p.relative_to(tf.INFRA)))
def test_every_variable_is_typed_precisely_and_described(directory):
    variables = tf.variables(directory)
    assert variables
    for name, body in variables.items():
        assert "type" in body, f"variable {name} in {directory.name} has no type"
        assert not re.search(r"\bany\b", str(body["type"])), f"variable {name} uses any: {body['type']}"
        description = body.get("description", "")
        assert len(description) >= 20, f"variable {name} in {directory.name} is not described"


@pytest.mark.parametrize("directory", tf.tf_dirs(), ids=lambda p: str(p.relative_to(tf.INFRA)))
def test_every_output_is_described(directory):
    outputs = {n: b for block in tf.blocks(directory, "output") for n, b in block.items()}
    assert outputs
    for name, body in outputs.items():
        assert body.get("description"), f"output {name} in {directory.name} has no description"


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_root_exposes_runner_profiles_per_region(cloud):
    outputs = {n: b for block in tf.blocks(tf.INFRA / cloud, "output") for n, b in block.items()}
    assert "runner_profiles" in outputs


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_cloud_readme_has_commands_and_cost_table(cloud):
    readme = (tf.INFRA / cloud / "README.md").read_text(encoding="utf-8")
    for command in ("terraform init", "terraform plan", "terraform apply"):
        assert command in readme, f"infra/{cloud}/README.md lacks `{command}`"
    table_rows = [line for line in readme.splitlines() if line.startswith("|")]
    assert len(table_rows) >= 4, "cost table missing"
    assert re.search(r"at rest", readme, re.I) and re.search(r"per million events", readme, re.I)
    assert re.search(r"assum", readme, re.I), "cost table needs its assumptions"


def test_scripts_kept_in_repo_are_referenced():
    emr = (tf.INFRA / "aws/modules/region/main.s3.tf").read_text(encoding="utf-8")
    assert "scripts/install-pipeline.sh" in emr and "scripts/start-flink-session.sh" in emr
    hdi = (tf.INFRA / "azure/modules/region/main.storage.tf").read_text(encoding="utf-8")
    assert "scripts/install-flink-on-yarn.sh" in hdi
    script = (tf.INFRA / "azure/scripts/install-flink-on-yarn.sh").read_text(encoding="utf-8")
    assert "yarn-session.sh" in script and "worker_pool_main" in script


# Costs the first tables left out, per cloud (NAT or endpoints, log ingestion, replication,
# shard-level metrics), each as a word the row must carry.
COST_ITEMS = {
    "aws": ("NAT", "interface endpoints", "shard-level metrics", "provisioned"),
    "azure": ("NAT", "Log Analytics", "GRS", "ZRS", "Premium"),
    "gcp": ("NAT", "Cloud Logging", "flow logs", "Cloud Monitoring"),
}


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_cost_table_has_the_items_it_left_out(cloud):
    readme = (tf.INFRA / cloud / "README.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in readme.splitlines() if line.startswith("|"))
    for item in COST_ITEMS[cloud]:
        assert item in rows, f"infra/{cloud}/README.md cost table lacks {item}"
    assert "terraform init -backend-config=backend.hcl" in readme, "the state comes first"
