"""crowd-kit (with pandas, scipy, scikit-learn: about 150 MB of resident memory) stays out of
the service process: only the aggregation worker process imports it (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_tasks_service_does_not_import_crowd_kit_or_pandas() -> None:
    probe = (
        "import sys\n"
        "from services.tasks.app import create_app\n"
        "import services.tasks.results.routes, services.tasks.results.jobs\n"
        "heavy = ('crowdkit', 'pandas', 'scipy', 'sklearn')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", done.stdout
