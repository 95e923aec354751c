"""MLflow (`train.log_to=[mlflow]`, the `vaegan[mlflow]` extra: mlflow-skinny, enough for a tracking server).

Where MLflow logs is its own configuration: MLFLOW_TRACKING_URI (a server, or `file:./mlruns` with
MLFLOW_ALLOW_FILE_STORE=true; MLflow's default, a SQLite file, needs the full mlflow package) and
MLFLOW_EXPERIMENT_NAME (default "vaegan", created if missing). The MLflow run is named after the run folder; its
id is kept in RUN/trackers.json so that a resume continues the same MLflow run. The client is used explicitly, so
nothing of MLflow's process-wide "active run" state is touched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from vaegan.runs import RunDir
from vaegan.tracking.tracker import numbers, require, start_error

PARAMS_PER_CALL = 100  # the most params MLflow takes in one log_batch call


class MlflowLog:
    name = "mlflow"

    def __init__(self, rundir: RunDir, config: dict[str, Any], run_id: str | None, first_step: int):
        """A new MLflow run, whose params are the config, or the `run_id` one set running again."""
        client_class = self.require()
        from mlflow.entities import Param

        self.summary_file = rundir.summary.name
        try:
            self.client = client_class()
            if run_id is None:
                experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "vaegan")
                found = self.client.get_experiment_by_name(experiment)
                experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
                run_id = self.client.create_run(experiment_id, run_name=rundir.path.name).info.run_id
                params = [Param(key, str(value)) for key, value in config.items()]
                for start in range(0, len(params), PARAMS_PER_CALL):
                    self.client.log_batch(run_id, params=params[start:start + PARAMS_PER_CALL])
            else:
                self.client.update_run(run_id, status="RUNNING")
        except Exception as err:  # MLflow's errors for an unreachable server, a store it cannot open, ...
            raise start_error("mlflow", err, "set MLFLOW_TRACKING_URI to a server, or to file:./mlruns with "
                                             "MLFLOW_ALLOW_FILE_STORE=true") from None
        self.run_id = run_id

    @staticmethod
    def require():
        return require("mlflow.tracking", "mlflow", "mlflow-skinny").MlflowClient

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{kind}/{key}", value, now, step) for key, value in numbers(values).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def image(self, tag: str, png: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(png), artifact_path=f"grids/{tag}")

    def summary(self, values: dict[str, Any]) -> None:
        self.client.log_dict(self.run_id, values, self.summary_file)

    def close(self, finished: bool) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if finished else "KILLED")
