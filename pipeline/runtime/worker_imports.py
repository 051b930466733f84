"""Imported once by the process parallel workers are forked from (``fork_server``).

Everything a job imports, at import or at first use, loaded and set up before any worker forks,
so that no worker pays for it again. (A module left out here is imported by the job, as before:
Matplotlib, which only ``mlflow.log_figures=true`` needs in a job, is 0.35 s of the start-up;
scikit-learn, 0.45 s, which a job needs only for a split the pre-flight did not cache.)
"""

import gc
import signal

# A Ctrl-C in the terminal reaches every process of the command. This one exits with the command,
# quietly (no KeyboardInterrupt traceback from an import); the workers forked from it ignore SIGINT
# until a job installs the termination handler, and the command forwards it to them until then.
signal.signal(signal.SIGINT, signal.SIG_IGN)

import alembic.command  # noqa: E402, F401  (MLflow's SQL store checks its schema version)
import git  # noqa: E402, F401  (MLflow's source tags)
import hydra_plugins.fnn_sweep.parallel_launcher  # noqa: E402, F401  (each job's function)
import mlflow.models.display_utils  # noqa: E402, F401  (model logging)
import mlflow.pyfunc  # noqa: E402, F401
import mlflow.pyfunc.scoring_server  # noqa: E402, F401
import mlflow.tracing.export  # noqa: E402, F401
import mlflow.tracing.processor  # noqa: E402, F401
import sqlalchemy.dialects.sqlite  # noqa: E402, F401

import pipeline.job.task  # noqa: E402, F401
import pipeline.sweep.callback  # noqa: E402, F401  (Hydra instantiates the sweep callback in every job)
from pipeline.runtime import compat  # noqa: E402

# SQLAlchemy configures MLflow's ORM classes at their first query: 0.3 s in every worker otherwise.
compat.warm_mlflow_sql_store()
# MLflow maps installed packages to modules once per process, at the first model it logs (to check
# the pinned requirements): 0.2-0.3 s in every worker's first job otherwise.
compat.warm_mlflow_requirements_map()

# Hydra's joblib launcher scans its plugins again at every job: a worker keeps the first job's registry.
compat.keep_hydra_plugins_between_jobs()

# Every worker is a fork of this process: frozen objects are never visited by a worker's garbage
# collector, which keeps their pages shared (copy-on-write) and each collection short.
gc.freeze()
