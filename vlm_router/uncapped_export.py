"""`python -m vlm_router.uncapped_export export openvino ...`: optimum-cli without optimum-intel's transformers caps.

optimum-intel refuses to export some model types with a newer transformers than it names (`phi3_v` past
4.53.3), because the modeling code published with those checkpoints breaks there. The tiny checkpoints of
`make-tiny` carry modeling code written in this project for the transformers the `convert` extra installs,
so they are exported through this instead of optimum-cli.
"""

import sys
from typing import Any, cast

from optimum.commands.optimum_cli import main
from optimum.exporters.openvino import model_configs


def lift_version_caps() -> None:
    """Let every optimum-intel export config run on any transformers version."""
    for export_config in vars(model_configs).values():
        if isinstance(export_config, type) and "MAX_TRANSFORMERS_VERSION" in vars(export_config):
            cast(Any, export_config).MAX_TRANSFORMERS_VERSION = None


if __name__ == "__main__":
    lift_version_caps()
    sys.exit(main())
