"""Entry point: `python -m pipeline` trains one model, `python -m pipeline -m` sweeps.

Exit status (pipeline.failure): 2 bad configuration or data, nothing ran;
1 a job failed; 128+N ended by signal N; 0 otherwise.
"""

import hydra

from pipeline import failure
from pipeline.config import register_configs
from pipeline.job import run

register_configs()


@hydra.main(version_base="1.3", config_path="pkg://pipeline.conf", config_name="config")
def hydra_app(cfg):
    return run(cfg)


def main():
    failure.run_entry_point(hydra_app)


if __name__ == "__main__":
    main()
