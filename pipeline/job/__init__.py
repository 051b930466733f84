"""One job: validate its config, load its data, train, and record it all in one MLflow run.

- ``task``: the Hydra task ``run``, its single-run and sweep-job paths around one shared step;
- ``context``: what Hydra says about the running job;
- ``identity``: its run name, console label and config hash (what resume matches on);
- ``inputs``: its data, and the rules between its settings and that data;
- ``build``: config to fnn_core objects;
- ``train``: training in the open run, and what it logs.
"""

from pipeline.job.task import run

__all__ = ["run"]
