"""The Dagster definitions of SynapFlow Assets (`dagster dev -w workspace.yaml`), built by
`defs.catalog.build_definitions`."""

import dagster as dg

from .defs.catalog import build_definitions

defs: dg.Definitions = build_definitions()
