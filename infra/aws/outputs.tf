output "runner_profiles" {
  description = "Per deployed region: the values runners/flink.py turns into FlinkRunner options (see docs/runners.md)."
  value = {
    for p in concat(
      module.us_east_1[*].runner_profile,
      module.eu_west_1[*].runner_profile,
      module.ap_southeast_1[*].runner_profile,
    ) : p.region => p
  }
}

output "buckets" {
  description = "Aggregates bucket per deployed region."
  value = {
    for p in concat(
      module.us_east_1[*].runner_profile,
      module.eu_west_1[*].runner_profile,
      module.ap_southeast_1[*].runner_profile,
    ) : p.region => p.output
  }
}
