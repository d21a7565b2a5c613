"""Validation blocks exist for enums, names and ranges, and their regexes accept and refuse."""

from __future__ import annotations

import re

import pytest

from tests.infra import tf

# The keys of regions.json, as every jurisdiction validation lists them.
JURISDICTIONS = "'us', 'eu', 'uk', 'sg', 'jp', 'au'"

# (directory, variable, text the validation conditions must mention) for every enum input.
ENUMS = [
    ("aws", "jurisdictions", JURISDICTIONS),
    ("aws", "kinesis", "'ON_DEMAND', 'PROVISIONED'"),
    ("aws", "emr", "'emr-7.4.0'"),
    ("aws", "tags", "'public', 'internal', 'confidential', 'restricted'"),
    ("aws/modules/region", "jurisdiction", JURISDICTIONS),
    ("aws/modules/region", "kinesis", "'ON_DEMAND', 'PROVISIONED'"),
    ("aws/modules/region", "emr", "'emr-7.4.0'"),
    ("azure", "jurisdictions", JURISDICTIONS),
    ("azure", "eventhubs", "'Standard', 'Premium'"),
    ("azure", "tags", "'public', 'internal', 'confidential', 'restricted'"),
    ("azure/modules/region", "jurisdiction", JURISDICTIONS),
    ("azure/modules/region", "eventhubs", "'Standard', 'Premium'"),
    ("gcp", "jurisdictions", JURISDICTIONS),
    ("gcp", "labels", "'public', 'internal', 'confidential', 'restricted'"),
    ("gcp", "pipeline_options", "'json', 'avro'"),
    ("gcp", "pipeline_options", "'ms', 's', 'us', 'ns'"),
    ("gcp/modules/region", "jurisdiction", JURISDICTIONS),
]

# Range inputs: the condition must compare the attribute with both bounds.
RANGES = [
    ("aws", "kinesis", "retention_hours", 24, 8760),
    ("aws", "bucket", "expiration_days", 90, 3650),
    ("aws/modules/region", "kinesis", "retention_hours", 24, 8760),
    ("azure", "eventhubs", "partition_count", 1, 32),
    ("azure/modules/region", "eventhubs", "retention_days", 1, 7),
    ("gcp", "pubsub", "message_retention_seconds", 600, 604800),
    ("gcp/modules/region", "pubsub", "ack_deadline_seconds", 10, 600),
    ("gcp/modules/region", "dataflow", "max_workers", 1, 1000),
]

# (directory, variable, accepted values, refused values) for name/format regexes.
REGEX_CASES = [
    ("aws", "name_prefix", ["bra", "analytics-prod"], ["Bra", "1bra", "ab", "a" * 21, "bra_x", "bra\n"]),
    ("azure", "name_prefix", ["bra", "prod01"], ["bra-prod", "BRA", "ab", "prod0123456"]),
    ("gcp", "project_id", ["my-proj-123"], ["My-proj", "proj-", "short"]),
    ("azure", "subscription_id", ["0b1f6471-1bf0-4dda-aec3-cb9272f09590"], ["0b1f6471", "not-a-guid"]),
    ("aws/modules/region", "region", ["eu-west-1", "us-gov-west-1"], ["eu-west", "westeurope", "eu-west-1a"]),
    ("aws", "beam_version", ["2.77.0"], ["2.77", "latest"]),
    ("aws", "pipeline_wheel_path", ["dist/x-0.1.0-py3-none-any.whl"], ["dist/x.tar.gz"]),
    ("gcp/modules/region", "region", ["europe-west1", "us-central1"], ["eu-west-1", "europe"]),
    ("azure/modules/region", "region", ["westeurope", "westus2"], ["West Europe", "west-europe"]),
]


def _conditions(directory: str, variable: str) -> list[str]:
    body = tf.variables(tf.INFRA / directory)[variable]
    return [v["condition"] for v in body.get("validation", [])]


def _quotes(condition: str) -> str:
    """hcl2 renders some string literals with ' and some with \"; compare on '."""
    return condition.replace('"', "'")


@pytest.mark.parametrize("directory,variable,values", ENUMS)
def test_enum_inputs_are_validated(directory, variable, values):
    conditions = _conditions(directory, variable)
    assert any(values in _quotes(c) and f"var.{variable}" in c for c in conditions), (
        f"{directory}: no validation of var.{variable} against {values}"
    )


@pytest.mark.parametrize("directory,variable,attribute,low,high", RANGES)
def test_range_inputs_are_validated(directory, variable, attribute, low, high):
    target = f"var.{variable}.{attribute}"
    conditions = [c for c in _conditions(directory, variable) if target in c]
    assert conditions, f"{directory}: {target} has no validation"
    text = " ".join(conditions)
    assert re.search(rf"{re.escape(target)} >=? {low}\b", text), f"{target} lacks its lower bound {low}"
    assert re.search(rf"{re.escape(target)} <=? {high}\b", text), f"{target} lacks its upper bound {high}"


def _regexes(condition: str) -> list[str]:
    raw = re.findall(r"""regex\((["'])((?:(?!\1)[^\\]|\\.)*)\1""", condition)
    return [pattern.replace("\\\\", "\\") for _, pattern in raw]


def _all_validation_regexes() -> list[tuple[str, str, str]]:
    found = []
    for directory in tf.tf_dirs():
        for name, body in tf.variables(directory).items():
            for validation in body.get("validation", []):
                for pattern in _regexes(validation["condition"]):
                    found.append((str(directory.relative_to(tf.INFRA)), name, pattern))
    return found


def test_every_variable_has_a_validation_or_is_free_text():
    # allowed_regions comes from regions.json; the module's pipeline_options from the
    # root, which validates it.
    free = {"allowed_regions", "pipeline_options"}
    for directory in tf.tf_dirs():
        for name, body in tf.variables(directory).items():
            if name in free:
                continue
            assert body.get("validation"), f"{directory.name}: variable {name} has no validation block"


def test_validation_regexes_are_anchored():
    regexes = _all_validation_regexes()
    assert len(regexes) >= 20
    for directory, name, pattern in regexes:
        # "\.whl$" style suffix checks are anchored at the end on purpose.
        assert pattern.endswith("$"), f"{directory} var.{name}: regex {pattern!r} is not anchored at the end"
        if not pattern.startswith("\\."):
            assert pattern.startswith("^"), f"{directory} var.{name}: regex {pattern!r} is not anchored at the start"


@pytest.mark.parametrize("directory,variable,good,bad", REGEX_CASES)
def test_name_regexes_accept_good_and_refuse_bad_values(directory, variable, good, bad):
    patterns = [p for c in _conditions(directory, variable) for p in _regexes(c)]
    assert patterns, f"{directory}: var.{variable} has no regex validation"
    for value in good:
        assert all(re.search(p, value) for p in patterns), f"{value!r} should pass {patterns}"
    for value in bad:
        # Terraform's RE2 "$" matches only at the very end; Python's also before a final
        # newline, so compare with \Z semantics.
        assert not all(re.search(p.replace("$", r"\Z"), value) for p in patterns), f"{value!r} should fail {patterns}"


def test_can_conditions_wrap_a_test_that_can_fail():
    # can(...) only fails on an error: it must wrap regex/cidrhost, not a plain value.
    for directory in tf.tf_dirs():
        for name, body in tf.variables(directory).items():
            for validation in body.get("validation", []):
                for inner in re.findall(r"can\((\w+)\(", validation["condition"]):
                    assert inner in {"regex", "cidrhost"}, f"{directory.name} var.{name}: can({inner}(...)) never fails"


def test_jurisdiction_validations_list_exactly_the_keys_of_regions_json():
    keys = ", ".join(f"'{j}'" for j in tf.regions_doc()["jurisdictions"])
    assert keys == JURISDICTIONS
    metadata = (tf.REPO / "runners/dataflow/metadata.json").read_text(encoding="utf-8")
    assert "^(" + "|".join(tf.regions_doc()["jurisdictions"]) + ")$" in metadata
