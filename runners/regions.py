"""infra/regions.json, read once: which regions of each cloud lie inside which jurisdiction.

The one reader of the file for the runner profiles (workers' regions) and the pipeline's
sovereignty guard (sources' and sinks' locations), so both answer alike:

- `allowed_regions.<j>.<cloud>`: every region inside jurisdiction j;
- `jurisdictions.<j>.<cloud>`: the regions the infrastructure is deployed to (Terraform's part);
- `gcs_multi_regions.<j>`: GCS multi-regions and predefined dual-regions inside j (a GCS
  bucket's location may be one of these instead of a region).

Region names are compared without regard to case: clouds report them in either (GCS says
EUROPE-WEST1, gcloud europe-west1).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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

    def jurisdictions(self) -> list[str]:
        return sorted(self.allowed)

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
    return Regions(
        allowed=data["allowed_regions"],
        gcs_multi_regions=data.get("gcs_multi_regions", {}),
    )
