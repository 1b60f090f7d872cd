"""``sweep(..., jobs=...)``: joblib processes and joblib's Dask backend give the serial rows, in order."""

from __future__ import annotations

import pytest

from osc_design import Target, sweep
from osc_design.errors import SpecError

TARGETS = [Target(c, c, k, input_size=8) for c in (16, 24, 32) for k in (3, 5)]
FAMILIES = ["conv", "depthwise-separable", "osc-2", "osc"]


def test_processes_give_the_serial_rows_in_order(monkeypatch):
    import joblib

    serial = sweep(TARGETS, FAMILIES, jobs=1)
    workers = []

    class Spy(joblib.Parallel):  # the rows must come from joblib's workers, not a serial fallback
        def __call__(self, iterable):
            out = super().__call__(iterable)
            workers.append(self.n_jobs)
            return out

    monkeypatch.setattr(joblib, "Parallel", Spy)
    assert sweep(TARGETS, FAMILIES, jobs=2) == serial and workers == [2]
    assert [(r["channels"], r["kernel"]) for r in serial][::4] == [(t.in_channels, t.kernel_size[0]) for t in TARGETS]


def test_dask_local_cluster_gives_the_serial_rows():
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    serial = sweep(TARGETS, FAMILIES, jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) \
            as cluster, distributed.Client(cluster), joblib.parallel_backend("dask"):
        with distributed.get_task_stream() as stream:
            assert sweep(TARGETS, FAMILIES) == serial
    assert len(stream.data) >= len(TARGETS) // 2  # the tasks ran on the cluster (joblib may batch targets)


@pytest.mark.parametrize("jobs", [0, -2, 1.5, True])
def test_bad_jobs_refused(jobs):
    with pytest.raises(SpecError, match="jobs"):
        sweep(TARGETS, FAMILIES, jobs=jobs)


def test_the_cli_default_runs_a_small_grid_in_one_process(monkeypatch):
    """Below 32 targets the default starts no joblib workers (starting them costs more than the grid);
    from 32 on it does, and ``--jobs 2`` always does."""
    import joblib
    from typer.testing import CliRunner

    from osc_design.cli import app

    started = []

    class Spy(joblib.Parallel):
        def __init__(self, *args, **kwargs):
            started.append(kwargs.get("n_jobs"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(joblib, "Parallel", Spy)
    small = ["sweep", "--channels", "16,24", "--kernels", "3", "--families", "conv,osc-2"]
    assert CliRunner().invoke(app, small).exit_code == 0 and started == []
    assert CliRunner().invoke(app, [*small, "--jobs", "2"]).exit_code == 0 and started == [2]
    channels = ",".join(str(c) for c in range(16, 16 + 32))
    assert CliRunner().invoke(app, ["sweep", "--channels", channels, "--kernels", "1", "--families",
                                    "conv"]).exit_code == 0 and started == [2, -1]
