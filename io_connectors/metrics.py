"""The one Beam metrics namespace of the project: every counter and gauge a run reports, from the
readers, the decoder and the writers, is queried by the summary and the exporters under it."""

NAMESPACE = "analytics"
