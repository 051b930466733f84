"""Entry point: `python -m pipeline` trains one model, `python -m pipeline -m` sweeps."""

import hydra

from pipeline.config import register_configs
from pipeline.job import run

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()
