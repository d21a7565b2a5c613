"""infra/regions.json, read once: which regions of each cloud lie inside which jurisdiction.

The one reader of the file for the runner profiles (workers' regions) and the pipeline's
sovereignty guard (sources' and sinks' locations), so both answer alike:

- `jurisdictions.<j>.name`: the legal area (EU/EEA, UK, Singapore, ...) whose law governs j;
- `allowed_regions.<j>.<cloud>`: every region inside jurisdiction j;
- `jurisdictions.<j>.<cloud>`: the regions the infrastructure is deployed to (Terraform's part);
- `jurisdictions.<j>.azure_geo_dr_pair`: the Event Hubs geo-DR secondary of a deployed Azure
  region, where a source's messages are served from after a failover;
- `gcs_multi_regions.<j>`: GCS multi-regions and predefined dual-regions inside j (a GCS
  bucket's location may be one of these instead of a region).

`Regions.problems()` names what would make the file lie about sovereignty (a region in two
jurisdictions, a deployed region or a geo-DR pair outside its jurisdiction); the guard refuses
to run on such a file, and the infra tests fail on it.

Region names are compared without regard to case: clouds report them in either (GCS says
EUROPE-WEST1, gcloud europe-west1).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

REGIONS_FILE = Path(__file__).resolve().parents[1] / "infra" / "regions.json"
REGIONS_ENV = "REGIONS_JSON"  # another copy of the file (the flex template image sets it)


@dataclass(frozen=True)
class Regions:
    """The content of regions.json that says where a region belongs."""

    allowed: Mapping[str, Mapping[str, Sequence[str]]]
    gcs_multi_regions: Mapping[str, Sequence[str]]
    names: Mapping[str, str] = field(default_factory=dict)
    deployed: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)
    geo_dr_pairs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def jurisdictions(self) -> list[str]:
        return sorted(self.allowed)

    def name_of(self, jurisdiction: str) -> str:
        """The legal area of `jurisdiction` ("European Union and EEA (GDPR)"), else its key."""
        return self.names.get(jurisdiction) or jurisdiction

    def geo_dr_pair(self, region: str) -> str | None:
        """The Event Hubs geo-DR secondary region of a deployed Azure `region` (any case), if any."""
        for pairs in self.geo_dr_pairs.values():
            for primary, pair in pairs.items():
                if primary.lower() == region.lower():
                    return pair
        return None

    def problems(self) -> list[str]:
        """What makes the file contradict itself about where data may go (empty: consistent)."""
        found: list[str] = []
        owner: dict[tuple[str, str], str] = {}
        for jurisdiction in self.jurisdictions():
            clouds = dict(self.allowed[jurisdiction])
            clouds["gcs"] = self.multi_regions_in(jurisdiction)
            for cloud, regions in clouds.items():
                for region in regions:
                    other = owner.setdefault((cloud, region.lower()), jurisdiction)
                    if other != jurisdiction:
                        found.append(f"{cloud} region {region} is in both {other} and {jurisdiction}")
        for jurisdiction, clouds in self.deployed.items():
            for cloud, regions in clouds.items():
                for region in regions:
                    if not self.allows(jurisdiction, cloud, region):
                        found.append(f"{jurisdiction} deploys {cloud} region {region}, which lies outside it")
        for jurisdiction, pairs in self.geo_dr_pairs.items():
            for primary, pair in pairs.items():
                if pair.lower() == primary.lower() or not self.allows(jurisdiction, "azure", pair):
                    found.append(
                        f"{jurisdiction}: the geo-DR pair {pair} of {primary} must be another azure region inside "
                        f"{jurisdiction} ({self.name_of(jurisdiction)})"
                    )
        return found

    def allowed_in(self, jurisdiction: str, cloud: str) -> tuple[str, ...]:
        """The regions of `cloud` inside `jurisdiction`, as regions.json spells them."""
        return tuple(self.allowed.get(jurisdiction, {}).get(cloud, ()))

    def multi_regions_in(self, jurisdiction: str) -> tuple[str, ...]:
        """The GCS multi-/dual-regions inside `jurisdiction`."""
        return tuple(self.gcs_multi_regions.get(jurisdiction, ()))

    def allows(self, jurisdiction: str, cloud: str, region: str) -> bool:
        """Whether `region` (any case; for gcp also a GCS multi-/dual-region) lies inside `jurisdiction`."""
        return region.lower() in self._inside(jurisdiction, cloud)

    def jurisdiction_of(self, cloud: str, region: str) -> str | None:
        for jurisdiction in self.jurisdictions():
            if self.allows(jurisdiction, cloud, region):
                return jurisdiction
        return None

    def _inside(self, jurisdiction: str, cloud: str) -> frozenset[str]:
        names = self.allowed_in(jurisdiction, cloud)
        if cloud == "gcp":
            names += self.multi_regions_in(jurisdiction)
        return frozenset(name.lower() for name in names)


def regions_path(path: str | os.PathLike[str] | None = None) -> Path:
    """`path`, else $REGIONS_JSON, else the repository's infra/regions.json."""
    return Path(path or os.environ.get(REGIONS_ENV) or REGIONS_FILE)


def load_regions(path: str | os.PathLike[str] | None = None) -> Regions:
    """Reads regions.json (see `regions_path`); raises OSError when it cannot be read."""
    found = regions_path(path).resolve()
    # Keyed by modification time too, so an edited file is read again.
    return _load(str(found), found.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load(path: str, _mtime_ns: int) -> Regions:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    spec = data.get("jurisdictions", {})
    return Regions(
        allowed=data["allowed_regions"],
        gcs_multi_regions=data.get("gcs_multi_regions", {}),
        names={j: s.get("name", "") for j, s in spec.items()},
        deployed={j: {c: s.get(c, []) for c in ("aws", "azure", "gcp")} for j, s in spec.items()},
        geo_dr_pairs={j: s.get("azure_geo_dr_pair", {}) for j, s in spec.items()},
    )
